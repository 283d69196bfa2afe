//! Copies of the views into the owned types of the codec.

use crate::mikey::{
    Cert, Chash, CsIdMap, DecodeError, Dh, Extension, GenericIdEntry, Hdr, Id, Idr, Kemac, KeyData,
    KeyIdEntry, KeyValidity, Message, Payload, Pke, PolicyParam, Received, Sakke, SecurityPolicy,
    Sign, Verification,
};

use super::{
    CsIdMapView, ExtensionView, HdrView, KemacView, KeyDataChain, KeyDataView, KeyIdEntryView,
    KeyValidityView, MessageView, PayloadView, PolicyParamView, SecurityPolicyView,
};

/// Collects the items of a walk that cannot say its length in advance into
/// one allocation of the right size: walking twice costs less than growing.
fn collect_exact<V, T>(views: impl Iterator<Item = V> + Clone, to: impl FnMut(V) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(views.clone().count());
    out.extend(views.map(to));
    out
}

impl MessageView<'_> {
    /// The owned message: what [`Message::decode`] gives for the same octets.
    pub fn to_message(&self) -> Message {
        Message {
            hdr: self.hdr.into(),
            payloads: self.payloads().map(|(_, p)| p.into()).collect(),
        }
    }

    /// The owned decoded datagram, a copy of the octets included.
    pub fn to_received(&self) -> Received {
        let mut payloads = Vec::with_capacity(self.count);
        let mut offsets = Vec::with_capacity(self.count);
        for (offset, p) in self.payloads() {
            offsets.push(offset);
            payloads.push(p.into());
        }
        self.received(payloads, offsets)
    }

    fn received(&self, payloads: Vec<Payload>, offsets: Vec<usize>) -> Received {
        Received {
            message: Message {
                hdr: self.hdr.into(),
                payloads,
            },
            bytes: self.bytes.to_vec(),
            offsets,
            mac: self.mac,
        }
    }
}

/// [`Message::decode`]: the borrowed reading, each payload copied as it is
/// checked.
pub(crate) fn decode_owned(input: &[u8]) -> Result<Received, DecodeError> {
    let (mut payloads, mut offsets) = (Vec::new(), Vec::new());
    let view = MessageView::decode_with(input, |offset, p| {
        offsets.push(offset);
        payloads.push(p.into());
    })?;
    Ok(view.received(payloads, offsets))
}

impl KeyDataChain<'_> {
    /// The owned Key data sub-payloads, as [`KeyData::decode_chain`] gives them.
    pub fn to_key_data(&self) -> Vec<KeyData> {
        collect_exact(self.iter(), KeyData::from)
    }
}

impl From<HdrView<'_>> for Hdr {
    fn from(h: HdrView<'_>) -> Self {
        Self {
            version: h.version,
            data_type: h.data_type,
            v: h.v,
            prf_func: h.prf_func,
            csb_id: h.csb_id,
            cs_count: h.cs_count,
            cs_id_map: match h.cs_id_map {
                CsIdMapView::SrtpId(map) => CsIdMap::SrtpId(map.iter().collect()),
                CsIdMapView::Empty => CsIdMap::Empty,
                CsIdMapView::GenericId(map) => {
                    CsIdMap::GenericId(collect_exact(map.iter(), |e| GenericIdEntry {
                        cs_id: e.cs_id,
                        prot_type: e.prot_type,
                        s: e.s,
                        policies: e.policies.to_vec(),
                        session_data: e.session_data.to_vec(),
                        spi: e.spi.to_vec(),
                    }))
                }
                CsIdMapView::Other(t) => CsIdMap::Other(t),
            },
        }
    }
}

impl From<PayloadView<'_>> for Payload {
    fn from(p: PayloadView<'_>) -> Self {
        match p {
            PayloadView::Kemac(k) => Self::Kemac(k.into()),
            PayloadView::Pke(p) => Self::Pke(Pke {
                cache: p.cache,
                data: p.data.to_vec(),
            }),
            PayloadView::Dh(d) => Self::Dh(Dh {
                group: d.group,
                value: d.value.to_vec(),
                reserved: d.reserved,
                validity: d.validity.into(),
            }),
            PayloadView::Sign(s) => Self::Sign(Sign {
                sign_type: s.sign_type,
                signature: s.signature.to_vec(),
            }),
            PayloadView::T(t) => Self::T(t),
            PayloadView::Id(id) => Self::Id(Id {
                id_type: id.id_type,
                data: id.data.to_vec(),
            }),
            PayloadView::Idr(idr) => Self::Idr(Idr {
                role: idr.role,
                id_type: idr.id_type,
                data: idr.data.to_vec(),
            }),
            PayloadView::Sakke(sk) => Self::Sakke(Sakke {
                params: sk.params,
                id_scheme: sk.id_scheme,
                data: sk.data.to_vec(),
            }),
            PayloadView::Cert(c) => Self::Cert(Cert {
                cert_type: c.cert_type,
                data: c.data.to_vec(),
            }),
            PayloadView::Chash(c) => Self::Chash(Chash {
                hash_func: c.hash_func,
                hash: c.hash.to_vec(),
            }),
            PayloadView::V(v) => Self::V(Verification {
                auth_alg: v.auth_alg,
                ver_data: v.ver_data.to_vec(),
            }),
            PayloadView::Sp(sp) => Self::Sp(sp.into()),
            PayloadView::Rand(r) => Self::Rand(r.to_vec()),
            PayloadView::Err(e) => Self::Err(e),
            PayloadView::Ext(e) => Self::Ext(e.into()),
        }
    }
}

impl From<KemacView<'_>> for Kemac {
    fn from(k: KemacView<'_>) -> Self {
        Self {
            encr_alg: k.encr_alg,
            encr_data: k.encr_data.to_vec(),
            mac_alg: k.mac_alg,
            mac: k.mac.to_vec(),
        }
    }
}

impl From<SecurityPolicyView<'_>> for SecurityPolicy {
    fn from(sp: SecurityPolicyView<'_>) -> Self {
        Self {
            policy_no: sp.policy_no,
            prot_type: sp.prot_type,
            params: collect_exact(sp.params(), PolicyParam::from),
        }
    }
}

impl From<PolicyParamView<'_>> for PolicyParam {
    fn from(p: PolicyParamView<'_>) -> Self {
        Self {
            param_type: p.param_type,
            value: p.value.to_vec(),
        }
    }
}

impl From<ExtensionView<'_>> for Extension {
    fn from(e: ExtensionView<'_>) -> Self {
        match e {
            ExtensionView::KeyId(ids) => Self::KeyId(collect_exact(ids.iter(), KeyIdEntry::from)),
            ExtensionView::Other { ext_type, data } => Self::Other {
                ext_type,
                data: data.to_vec(),
            },
        }
    }
}

impl From<KeyIdEntryView<'_>> for KeyIdEntry {
    fn from(e: KeyIdEntryView<'_>) -> Self {
        match e {
            KeyIdEntryView::KeyDomain(id) => Self::KeyDomain(id),
            KeyIdEntryView::Msk(id) => Self::Msk(id),
            KeyIdEntryView::Mtk(id) => Self::Mtk(id),
            KeyIdEntryView::Other { id_type, value } => Self::Other {
                id_type,
                value: value.to_vec(),
            },
        }
    }
}

impl From<KeyValidityView<'_>> for KeyValidity {
    fn from(v: KeyValidityView<'_>) -> Self {
        match v {
            KeyValidityView::Null => Self::Null,
            KeyValidityView::Spi(spi) => Self::Spi(spi.to_vec()),
            KeyValidityView::Interval { from, to } => Self::Interval {
                from: from.to_vec(),
                to: to.to_vec(),
            },
        }
    }
}

impl From<KeyDataView<'_>> for KeyData {
    fn from(kd: KeyDataView<'_>) -> Self {
        Self {
            key_type: kd.key_type,
            key: kd.key.to_vec(),
            salt: kd.salt.map(<[u8]>::to_vec),
            validity: kd.validity.into(),
        }
    }
}
