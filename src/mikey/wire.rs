//! Wire enums of RFC 3830 / RFC 4563 as newtypes over the octet: a value the
//! registry does not name is kept as it is, so that it survives a round trip.

use std::fmt;

/// Declares a newtype over an integer with named constants and their names.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident($int:ty) { $($(#[$cmeta:meta])* $konst:ident = $value:expr => $text:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        impl $name {
            $(
                #[doc = concat!("`", stringify!($value), "`: ", $text, ".")]
                $(#[$cmeta])*
                pub const $konst: Self = Self($value);
            )*

            /// The registry name of the value, `None` when it is not assigned.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(text) => write!(f, "{} ({})", text, self.0),
                    None => write!(f, "Unknown ({})", self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl From<$int> for $name {
            fn from(value: $int) -> Self {
                Self(value)
            }
        }
    };
}

wire_enum! {
    /// HDR data type (RFC 3830 §6.1, IANA "MIKEY Payloads").
    DataType(u8) {
        PSK_INIT = 0 => "Pre-shared",
        PSK_VERIFY = 1 => "PSK ver msg",
        PK_INIT = 2 => "Public key",
        PK_VERIFY = 3 => "PK ver msg",
        DH_INIT = 4 => "D-H init",
        DH_RESP = 5 => "D-H resp",
        ERROR = 6 => "Error",
        DHHMAC_INIT = 7 => "DHHMAC init",
        DHHMAC_RESP = 8 => "DHHMAC resp",
        RSA_R_INIT = 9 => "RSA-R I_MSG",
        RSA_R_RESP = 10 => "RSA-R R_MSG",
        /// MIKEY-SAKKE I_MESSAGE (RFC 6509 §4.1).
        SAKKE = 26 => "SAKKE",
        /// CS ID map update (Wireshark's name; not used by this project).
        CS_ID_MAP_UPDATE = 27 => "CS Id map Update",
    }
}

wire_enum! {
    /// Next-payload values (RFC 3830 §6.1, Table 6.1.c).
    PayloadType(u8) {
        LAST = 0 => "Last payload",
        KEMAC = 1 => "KEMAC",
        PKE = 2 => "PKE",
        DH = 3 => "DH",
        SIGN = 4 => "SIGN",
        T = 5 => "T",
        ID = 6 => "ID",
        CERT = 7 => "CERT",
        CHASH = 8 => "CHASH",
        V = 9 => "V",
        SP = 10 => "SP",
        RAND = 11 => "RAND",
        ERR = 12 => "ERR",
        /// RFC 6043 §6.6: ID with a role.
        IDR = 14 => "IDR",
        KEY_DATA = 20 => "Key data",
        GENERAL_EXT = 21 => "General Extension",
        /// RFC 6509 §4.2: SAKKE Encapsulated Data.
        SAKKE = 26 => "SAKKE",
    }
}

wire_enum! {
    /// HDR PRF func (RFC 3830 §6.1; 1 is RFC 6043's PRF-HMAC-SHA-256).
    PrfFunc(u8) {
        MIKEY_1 = 0 => "MIKEY-1",
        HMAC_SHA_256 = 1 => "PRF-HMAC-SHA-256",
    }
}

wire_enum! {
    /// CS ID map type (RFC 3830 §6.1; 1 is RFC 4563's empty map).
    CsIdMapType(u8) {
        SRTP_ID = 0 => "SRTP-ID",
        EMPTY = 1 => "Empty map",
        GENERIC_ID = 2 => "GENERIC-ID",
    }
}

wire_enum! {
    /// Timestamp type of the T payload (RFC 3830 §6.6).
    TsType(u8) {
        NTP_UTC = 0 => "NTP-UTC",
        NTP = 1 => "NTP",
        COUNTER = 2 => "COUNTER",
    }
}

wire_enum! {
    /// ID type of the ID and IDR payloads (RFC 3830 §6.7; 2 is RFC 6043's byte string).
    IdType(u8) {
        NAI = 0 => "NAI",
        URI = 1 => "URI",
        BYTE_STRING = 2 => "Byte string",
    }
}

wire_enum! {
    /// Certificate type of the CERT payload (RFC 3830 §6.7).
    CertType(u8) {
        X509V3 = 0 => "X.509v3",
        X509V3_URL = 1 => "X.509v3 URL",
        X509V3_SIGN = 2 => "X.509v3 Sign",
        X509V3_ENCR = 3 => "X.509v3 Encr",
    }
}

wire_enum! {
    /// KEMAC encryption algorithm (RFC 3830 §6.2).
    EncrAlg(u8) {
        NULL = 0 => "NULL",
        AES_CM_128 = 1 => "AES-CM-128",
        AES_KW_128 = 2 => "AES-KW-128",
    }
}

wire_enum! {
    /// KEMAC MAC algorithm and V payload auth algorithm (RFC 3830 §6.2, §6.9).
    MacAlg(u8) {
        NULL = 0 => "NULL",
        HMAC_SHA1_160 = 1 => "HMAC-SHA-1-160",
    }
}

impl MacAlg {
    /// Octets of the MAC field, `None` for an algorithm whose length is unknown.
    pub fn mac_len(self) -> Option<usize> {
        match self {
            Self::NULL => Some(0),
            Self::HMAC_SHA1_160 => Some(20),
            _ => None,
        }
    }
}

wire_enum! {
    /// DH group (RFC 3830 §6.4).
    DhGroup(u8) {
        OAKLEY_5 = 0 => "OAKLEY 5",
        OAKLEY_1 = 1 => "OAKLEY 1",
        OAKLEY_2 = 2 => "OAKLEY 2",
    }
}

impl DhGroup {
    /// Octets of the DH value: 1536, 768 and 1024 bits.
    pub fn value_len(self) -> Option<usize> {
        match self {
            Self::OAKLEY_5 => Some(192),
            Self::OAKLEY_1 => Some(96),
            Self::OAKLEY_2 => Some(128),
            _ => None,
        }
    }
}

wire_enum! {
    /// Signature type of the SIGN payload (RFC 3830 §6.5), a 4-bit field.
    SignType(u8) {
        RSA_PKCS1 = 0 => "RSA/PKCS#1/1.5",
        RSA_PSS = 1 => "RSA/PSS",
        /// RFC 6509 §4.3: ECCSI (RFC 6507), `r (32) ‖ s (32) ‖ PVT (65)` for parameter set 1.
        ECCSI = 2 => "ECCSI",
    }
}

wire_enum! {
    /// Hash function of the CHASH payload (RFC 3830 §6.8).
    HashFunc(u8) {
        SHA1 = 0 => "SHA-1",
        MD5 = 1 => "MD5",
    }
}

impl HashFunc {
    /// Octets of the hash.
    pub fn hash_len(self) -> Option<usize> {
        match self {
            Self::SHA1 => Some(20),
            Self::MD5 => Some(16),
            _ => None,
        }
    }
}

wire_enum! {
    /// Security protocol of the SP payload (RFC 3830 §6.10).
    ProtType(u8) {
        SRTP = 0 => "SRTP",
    }
}

wire_enum! {
    /// SRTP policy parameter type (RFC 3830 §6.10.1, Table 6.10.1.a).
    SrtpParam(u8) {
        ENCR_ALG = 0 => "Encryption algorithm",
        ENCR_KEY_LEN = 1 => "Session Encr. key length",
        AUTH_ALG = 2 => "Authentication algorithm",
        AUTH_KEY_LEN = 3 => "Session Auth. key length",
        SALT_KEY_LEN = 4 => "Session Salt key length",
        SRTP_PRF = 5 => "SRTP Pseudo Random Function",
        KEY_DERIVATION_RATE = 6 => "Key derivation rate",
        SRTP_ENCRYPTION = 7 => "SRTP encryption off/on",
        SRTCP_ENCRYPTION = 8 => "SRTCP encryption off/on",
        FEC_ORDER = 9 => "Sender's FEC order",
        SRTP_AUTHENTICATION = 10 => "SRTP authentication off/on",
        AUTH_TAG_LEN = 11 => "Authentication tag length",
        SRTP_PREFIX_LEN = 12 => "SRTP prefix length",
    }
}

wire_enum! {
    /// Error number of the ERR payload (RFC 3830 §6.12).
    ErrNo(u8) {
        AUTH_FAILURE = 0 => "Authentication failure",
        INVALID_TS = 1 => "Invalid timestamp",
        INVALID_PRF = 2 => "PRF function not supported",
        INVALID_MAC = 3 => "MAC algorithm not supported",
        INVALID_EA = 4 => "Encryption algorithm not supported",
        INVALID_HA = 5 => "Hash function not supported",
        INVALID_DH = 6 => "DH group not supported",
        INVALID_ID = 7 => "ID not supported",
        INVALID_CERT = 8 => "Certificate not supported",
        INVALID_SP = 9 => "SP type not supported",
        INVALID_SPPAR = 10 => "SP parameters not supported",
        INVALID_DT = 11 => "Data type not supported",
        UNSPECIFIED = 12 => "Unspecified error",
    }
}

wire_enum! {
    /// Key data type, the high nibble of the Key data sub-payload's second octet (RFC 3830 §6.13).
    KeyDataType(u8) {
        TGK = 0 => "TGK",
        TGK_SALT = 1 => "TGK+SALT",
        TEK = 2 => "TEK",
        TEK_SALT = 3 => "TEK+SALT",
    }
}

impl KeyDataType {
    /// Whether a Salt len / Salt data field follows the key.
    pub fn has_salt(self) -> bool {
        matches!(self, Self::TGK_SALT | Self::TEK_SALT)
    }
}

wire_enum! {
    /// Key validity type, the low nibble of the Key data sub-payload's second octet (RFC 3830 §6.13).
    KvType(u8) {
        NULL = 0 => "NULL",
        SPI = 1 => "SPI/MKI",
        INTERVAL = 2 => "Interval",
    }
}

wire_enum! {
    /// General Extension type (RFC 3830 §6.15; 3 is RFC 4563's Key ID).
    ExtType(u8) {
        VENDOR_ID = 0 => "Vendor ID",
        SDP_IDS = 1 => "SDP IDs",
        KEY_ID = 3 => "Key ID",
        /// TS 33.180 key parameters, kept raw (named below, with the IDR roles).
        KEY_PARAMS = 7 => "Key parameters (TS 33.180)",
    }
}

wire_enum! {
    /// Key ID sub-payload type inside the Key ID extension (RFC 4563 §4, Table 2).
    KeyIdType(u8) {
        KEY_DOMAIN_ID = 0 => "MBMS Key Domain ID",
        MSK_ID = 1 => "MBMS Service Key ID",
        MTK_ID = 2 => "MBMS Traffic Key ID",
    }
}

// [CHOICE] (docs/profile.md §2.5, §6): the names of IDR roles 8 and 9, of
// SAKKE ID scheme 2 and of EXT type 7 (above) are those of what MIKEY-SAKKE
// messages carry there; their registered names were not at hand. The data
// of EXT type 7 is kept raw: its field layout is not confirmed.
wire_enum! {
    /// ID role of the IDR payload (RFC 6043 §6.6; 8 and 9 as TS 33.180 MIKEY-SAKKE messages
    /// use them, named in `docs/profile.md` §7).
    IdRole(u8) {
        IDRI = 1 => "Initiator (IDRi)",
        IDRR = 2 => "Responder (IDRr)",
        IDRKMS = 3 => "KMS (IDRkms)",
        IDRPSK = 4 => "Pre-Shared Key (IDRpsk)",
        IDRAPP = 5 => "Application (IDRapp)",
        IDRKMSI = 6 => "Initiator's KMS (IDRkmsi)",
        IDRKMSR = 7 => "Responder's KMS (IDRkmsr)",
        IDRUIDI = 8 => "Initiator UID",
        IDRUIDR = 9 => "Responder UID",
    }
}

wire_enum! {
    /// SAKKE params of the SAKKE payload (RFC 6509 §4.2).
    SakkeParams(u8) {
        PARAMETER_SET_1 = 1 => "Parameter Set 1",
    }
}

wire_enum! {
    /// ID scheme of the SAKKE payload (RFC 6509 §4.2; 2 as TS 33.180 messages use it).
    SakkeIdScheme(u8) {
        TEL_URI_MONTHLY = 1 => "tel URI with monthly keys",
        UID = 2 => "MIKEY-SAKKE UID",
    }
}
