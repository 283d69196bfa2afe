//! The UE side of TS 33.246 (the MGV-F/MGV-S role): a sans-IO [`Receiver`]
//! that applies MSK and MTK messages, and the tokio driver and HTTP client
//! around it.
