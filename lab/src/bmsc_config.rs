//! The BM-SC configuration of the labs (the benches and the end-to-end tests), written once:
//! one download service authorizing everyone, Key Requests on 127.0.0.1, the admin endpoint on
//! 127.0.0.2 (any port), and the lab's subscribers as the key source.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A lab BM-SC configuration; [`LabConfig::to_toml`] gives its text. Fields left `None` keep
/// the server's defaults.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// `fqdn`.
    pub fqdn: String,
    /// `data_dir`.
    pub data_dir: PathBuf,
    /// The port of `http_listen` on 127.0.0.1 (0: any).
    pub http_port: u16,
    /// `ue_port`.
    pub ue_port: u16,
    /// `[digest] qop`.
    pub qop: Option<&'static str>,
    /// `[digest] algorithm`.
    pub algorithm: Option<&'static str>,
    /// `[digest] nonce_lifetime`.
    pub nonce_lifetime: Option<&'static str>,
    /// `[push] retries`.
    pub push_retries: Option<u32>,
    /// `[push] initial_backoff` and `max_backoff`.
    pub push_backoff: Option<(&'static str, &'static str)>,
    /// The service.
    pub service: LabService,
    /// `[[gba.subscribers]]`.
    pub subscribers: Vec<LabSubscriber>,
    /// The body of a `[gba.zn]` table (instead of subscribers).
    pub zn: Option<String>,
}

/// The lab's one `[[services]]` entry (download, key domain 00f110, Key Group 1, `"*"`).
#[derive(Debug, Clone)]
pub struct LabService {
    /// `id`.
    pub id: String,
    /// `msk_lifetime`.
    pub msk_lifetime: &'static str,
    /// `mtk_interval`.
    pub mtk_interval: &'static str,
    /// `mtk_resend`.
    pub mtk_resend: &'static str,
    /// `mtk_destination`.
    pub mtk_destination: SocketAddr,
}

/// The `[services.srtp]` table that makes the lab's service a streaming one: the BM-SC protects
/// the RTP arriving on `rtp_input` and sends it to `media_destination`.
#[derive(Debug, Clone)]
pub struct LabStreaming {
    /// `ssrc`.
    pub ssrc: u32,
    /// `rtp_input`.
    pub rtp_input: SocketAddr,
    /// `media_destination`.
    pub media_destination: SocketAddr,
    /// `mki`: whether the packets carry the MKI (MSK ID ‖ MTK ID).
    pub mki: bool,
}

/// One `[[gba.subscribers]]` entry with a Ks_NAF, valid until 2040.
#[derive(Debug, Clone)]
pub struct LabSubscriber {
    /// `btid`.
    pub btid: String,
    /// `impi`.
    pub impi: String,
    /// `ks_naf`, 32 octets.
    pub ks_naf: [u8; 32],
}

impl LabConfig {
    /// A configuration with the server's defaults for Digest and push, and no subscribers.
    pub fn new(fqdn: &str, data_dir: PathBuf, ue_port: u16, service: LabService) -> Self {
        Self {
            fqdn: fqdn.to_owned(),
            data_dir,
            http_port: 0,
            ue_port,
            qop: None,
            algorithm: None,
            nonce_lifetime: None,
            push_retries: None,
            push_backoff: None,
            service,
            subscribers: Vec::new(),
            zn: None,
        }
    }

    /// The TOML text `bmsc serve --config` reads.
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "fqdn = \"{}\"", self.fqdn);
        let _ = writeln!(t, "http_listen = \"127.0.0.1:{}\"", self.http_port);
        let _ = writeln!(t, "admin_listen = \"127.0.0.2:0\"");
        let _ = writeln!(t, "ue_port = {}", self.ue_port);
        let _ = writeln!(t, "data_dir = \"{}\"", self.data_dir.display());
        if self.qop.is_some() || self.algorithm.is_some() || self.nonce_lifetime.is_some() {
            t.push_str("\n[digest]\n");
            for (key, value) in [
                ("qop", self.qop),
                ("algorithm", self.algorithm),
                ("nonce_lifetime", self.nonce_lifetime),
            ] {
                if let Some(v) = value {
                    let _ = writeln!(t, "{key} = \"{v}\"");
                }
            }
        }
        if self.push_retries.is_some() || self.push_backoff.is_some() {
            t.push_str("\n[push]\n");
            if let Some(r) = self.push_retries {
                let _ = writeln!(t, "retries = {r}");
            }
            if let Some((initial, max)) = self.push_backoff {
                let _ = writeln!(
                    t,
                    "initial_backoff = \"{initial}\"\nmax_backoff = \"{max}\""
                );
            }
        }
        let s = &self.service;
        let _ = write!(
            t,
            "\n[[services]]\nid = \"{}\"\nkey_domain = \"00f110\"\nkey_group = 1\n\
             msk_lifetime = \"{}\"\nmtk_interval = \"{}\"\nmtk_resend = \"{}\"\n\
             mtk_destination = \"{}\"\ntransport = \"download\"\nauthorized = \"*\"\n",
            s.id, s.msk_lifetime, s.mtk_interval, s.mtk_resend, s.mtk_destination
        );
        for sub in &self.subscribers {
            let _ = write!(
                t,
                "\n[[gba.subscribers]]\nbtid = \"{}\"\nimpi = \"{}\"\nks_naf = \"{}\"\n\
                 expires = \"2040-01-01T00:00:00Z\"\n",
                sub.btid,
                sub.impi,
                hex::encode(sub.ks_naf)
            );
        }
        if let Some(zn) = &self.zn {
            let _ = write!(t, "\n[gba.zn]\n{zn}\n");
        }
        t
    }
}

impl LabConfig {
    /// The TOML text of [`LabConfig::to_toml`] with the service turned into a streaming one
    /// (`[services.srtp]` from `srtp`), multicast sent from 127.0.0.1 (loopback multicast needs
    /// the sender to name the interface).
    pub fn to_streaming_toml(&self, srtp: &LabStreaming) -> String {
        let download = self.to_toml();
        let text = download.replace("transport = \"download\"", "transport = \"streaming\"");
        // Top-level keys first; `[services.srtp]` after the subscribers belongs to the last
        // (the only) `[[services]]` entry.
        format!(
            "multicast_interface = \"127.0.0.1\"\n{text}\n[services.srtp]\nssrc = {}\n\
             rtp_input = \"{}\"\nmedia_destination = \"{}\"\nmki = {}\n",
            srtp.ssrc, srtp.rtp_input, srtp.media_destination, srtp.mki
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_a_configuration_the_bmsc_accepts() {
        let mut c = LabConfig::new(
            "bmsc.lab.example.org",
            PathBuf::from("/tmp/lab"),
            2269,
            LabService {
                id: "urn:lab:news".to_owned(),
                msk_lifetime: "1h",
                mtk_interval: "10s",
                mtk_resend: "1s",
                mtk_destination: "127.0.0.1:5000".parse().unwrap_or_else(|e| panic!("{e}")),
            },
        );
        c.qop = Some("auth,auth-int");
        c.push_retries = Some(2);
        c.push_backoff = Some(("300ms", "1s"));
        c.subscribers.push(LabSubscriber {
            btid: "VUUt01@bsf.lab.example.org".to_owned(),
            impi: "user1@ims.lab.example.org".to_owned(),
            ks_naf: [0x41; 32],
        });
        let parsed = mbms_keys::bmsc::config::Config::parse(&c.to_toml());
        assert!(parsed.is_ok(), "{:?}\n{}", parsed.err(), c.to_toml());
        let streaming = c.to_streaming_toml(&LabStreaming {
            ssrc: 0x1122_3344,
            rtp_input: "127.0.0.1:5002".parse().unwrap_or_else(|e| panic!("{e}")),
            media_destination: "239.255.0.9:5004".parse().unwrap_or_else(|e| panic!("{e}")),
            mki: true,
        });
        assert!(
            streaming.contains("transport = \"streaming\""),
            "{streaming}"
        );
        let parsed = mbms_keys::bmsc::config::Config::parse(&streaming);
        assert!(parsed.is_ok(), "{:?}\n{streaming}", parsed.err());
    }
}
