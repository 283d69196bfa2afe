//! `mbms-keys mikey build-msk | build-mtk | build-ack`: the messages of the
//! profile from explicit inputs, as hex on standard output.

use std::process::ExitCode;

use clap::Args;
use mbms_keys::crypto::{Msk, Mtk, Muk, Salt};
use mbms_keys::mbms::{
    AckContext, MskDelivery, MskUpdate, MtkDelivery, MtkKeys, Streaming, UnverifiedMsk, build_ack,
    build_msk, build_mtk, profile,
};
use mbms_keys::mikey::{KeyDomainId, MskId, MtkId};

use crate::input::{key, parse_hex, read_hex_arg};

#[derive(Args)]
pub struct BuildMskArgs {
    /// The MUK (32 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_MUK",
        hide_env_values = true
    )]
    muk: String,
    /// Key Domain ID (3 octets, hex).
    #[arg(long)]
    key_domain: KeyDomainId,
    /// MSK ID (4 octets, hex): Key Group ‖ Key Number.
    #[arg(long)]
    msk_id: MskId,
    /// The MSK (16 octets); omit for a validity-only update.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_MSK",
        hide_env_values = true
    )]
    msk: Option<String>,
    /// SEQl, the first MTK ID of the validity interval (decimal).
    #[arg(long, required_unless_present_any = ["invalidate", "solicited_pull"])]
    seql: Option<u16>,
    /// SEQu, the last MTK ID of the validity interval (decimal).
    #[arg(long, required_unless_present_any = ["invalidate", "solicited_pull"])]
    sequ: Option<u16>,
    /// The BM-SC's counter for this MUK (decimal).
    #[arg(long)]
    counter: u32,
    /// RAND (hex, 16 octets in the profile).
    #[arg(long)]
    rand: String,
    /// IDi: the BM-SC FQDN.
    #[arg(long)]
    idi: String,
    /// IDr: the B-TID.
    #[arg(long)]
    idr: String,
    /// Set V = 1: ask for an acknowledgement.
    #[arg(long)]
    ack: bool,
    /// HDR CSB ID (decimal); the MSK ID by default.
    #[arg(long)]
    csb_id: Option<u32>,
    /// Build an invalidation (SEQl = ffff > SEQu = 0000, no key).
    #[arg(long, conflicts_with_all = ["msk", "seql", "sequ", "solicited_pull"])]
    invalidate: bool,
    /// Build a solicited pull (Key Number 0, no key data, V = 0).
    #[arg(long, conflicts_with_all = ["msk", "seql", "sequ", "ack"])]
    solicited_pull: bool,
}

#[derive(Args)]
pub struct BuildMtkArgs {
    /// The MSK (16 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_MSK",
        hide_env_values = true
    )]
    msk: String,
    #[arg(long)]
    key_domain: KeyDomainId,
    #[arg(long)]
    msk_id: MskId,
    /// MTK ID (decimal).
    #[arg(long)]
    mtk_id: u16,
    /// The MTK (16 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_MTK",
        hide_env_values = true
    )]
    mtk: String,
    /// The MTK salt (14 octets): TEK+SALT.
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_SALT",
        hide_env_values = true
    )]
    salt: Option<String>,
    /// The BM-SC's counter for this MSK (decimal).
    #[arg(long)]
    counter: u32,
    /// Streaming: SSRC of the SRTP-ID map entry (decimal); adds an SRTP policy.
    #[arg(long, requires = "srtp_roc")]
    srtp_ssrc: Option<u32>,
    /// Streaming: ROC of the SRTP-ID map entry (decimal).
    #[arg(long, requires = "srtp_ssrc")]
    srtp_roc: Option<u32>,
    /// HDR CSB ID (decimal); the MSK ID by default.
    #[arg(long)]
    csb_id: Option<u32>,
}

#[derive(Args)]
pub struct BuildAckArgs {
    /// The MUK (32 octets).
    #[arg(
        long,
        value_name = "HEX|@FILE",
        env = "MBMS_MUK",
        hide_env_values = true
    )]
    muk: String,
    /// The MSK message being acknowledged: hex, @FILE or -.
    #[arg(long)]
    of: String,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn emit(result: Result<Vec<u8>, impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(bytes) => {
            println!("{}", hex::encode(bytes));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub fn msk(a: BuildMskArgs) -> ExitCode {
    let muk = match key("--muk", &a.muk, Muk::from_slice) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let rand = match parse_hex(&a.rand) {
        Ok(r) => r,
        Err(e) => return fail(format!("--rand: {e}")),
    };
    let update = if a.solicited_pull {
        MskUpdate::SolicitedPull
    } else if a.invalidate {
        MskUpdate::Invalidate {
            seql: profile::INVALIDATION_SEQL,
            sequ: profile::INVALIDATION_SEQU,
        }
    } else {
        let (Some(seql), Some(sequ)) = (a.seql, a.sequ) else {
            return fail("--seql and --sequ are required");
        };
        match a.msk.as_deref().map(|m| key("--msk", m, Msk::from_slice)) {
            Some(Ok(msk)) => MskUpdate::NewKey { msk, seql, sequ },
            Some(Err(e)) => return fail(e),
            None => MskUpdate::ValidityOnly { seql, sequ },
        }
    };
    let mut d = MskDelivery::new(
        a.key_domain,
        a.msk_id,
        a.counter,
        rand,
        &a.idi,
        &a.idr,
        update,
    );
    d.v = a.ack && !a.solicited_pull;
    if let Some(csb) = a.csb_id {
        d.csb_id = csb;
    }
    emit(build_msk(&muk, &d))
}

pub fn mtk(a: BuildMtkArgs) -> ExitCode {
    let msk = match key("--msk", &a.msk, Msk::from_slice) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let mtk = match key("--mtk", &a.mtk, Mtk::from_slice) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let salt = match a
        .salt
        .as_deref()
        .map(|s| key("--salt", s, Salt::from_slice))
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let csb_id = a.csb_id.unwrap_or_else(|| profile::csb_id_for(a.msk_id));
    let streaming = a
        .srtp_ssrc
        .zip(a.srtp_roc)
        .map(|(ssrc, roc)| Streaming::srtp_default(ssrc, roc));
    let d = MtkDelivery {
        key_domain_id: a.key_domain,
        msk_id: a.msk_id,
        csb_id,
        mtk_id: MtkId(a.mtk_id),
        counter: a.counter,
        mtk,
        salt,
        streaming,
    };
    emit(build_mtk(&MtkKeys::new(&msk, csb_id), &d))
}

pub fn ack(a: BuildAckArgs) -> ExitCode {
    let muk = match key("--muk", &a.muk, Muk::from_slice) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let of = match read_hex_arg(&a.of) {
        Ok(b) => b,
        Err(e) => return fail(format!("--of: {e}")),
    };
    let msg = match UnverifiedMsk::parse(&of).and_then(|u| u.verify(&muk)) {
        Ok(m) => m,
        Err(e) => return fail(format!("--of: {e}")),
    };
    emit(build_ack(&AckContext::of(&msg)))
}
