//! A readable description of a decoded message, as a JSON object (for
//! `--json`) and as an indented text tree in the manner of `tshark -V`, but
//! knowing the RFC 4563 Key ID extension and the empty map.

use serde_json::{Map, Value, json};

use super::{CsIdMap, Extension, KeyData, KeyIdEntry, KeyValidity, Payload, Received, Timestamp};

fn named<T: Into<u64> + Copy>(value: T, name: Option<&'static str>) -> Value {
    json!({ "value": value.into(), "name": name.unwrap_or("Unknown") })
}

fn validity(v: &KeyValidity) -> Value {
    match v {
        KeyValidity::Null => json!({ "kv": named(0u8, Some("NULL")) }),
        KeyValidity::Spi(spi) => {
            json!({ "kv": named(1u8, Some("SPI/MKI")), "spi": hex::encode(spi) })
        }
        KeyValidity::Interval { from, to } => json!({
            "kv": named(2u8, Some("Interval")),
            "valid_from": hex::encode(from),
            "valid_to": hex::encode(to),
        }),
    }
}

/// Describes Key data sub-payloads, for a KEMAC whose Encr data is plaintext.
pub fn key_data(items: &[KeyData]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|kd| {
                let mut o = Map::new();
                o.insert("type".into(), named(kd.key_type.0, kd.key_type.name()));
                o.insert("key_len".into(), json!(kd.key.len()));
                o.insert("key".into(), json!(hex::encode(&kd.key)));
                if let Some(salt) = &kd.salt {
                    o.insert("salt".into(), json!(hex::encode(salt)));
                }
                if let Value::Object(v) = validity(&kd.validity) {
                    o.extend(v);
                }
                Value::Object(o)
            })
            .collect(),
    )
}

fn payload(p: &Payload) -> Map<String, Value> {
    let mut o = Map::new();
    let t = p.payload_type();
    o.insert("payload".into(), json!(t.name().unwrap_or("Unknown")));
    let fields = match p {
        Payload::Kemac(k) => {
            let mut f = json!({
                "encr_alg": named(k.encr_alg.0, k.encr_alg.name()),
                "encr_data_len": k.encr_data.len(),
                "encr_data": hex::encode(&k.encr_data),
                "mac_alg": named(k.mac_alg.0, k.mac_alg.name()),
                "mac": hex::encode(&k.mac),
            });
            if k.encr_alg == super::EncrAlg::NULL {
                let plain = match KeyData::decode_chain(&k.encr_data) {
                    Ok(items) => key_data(&items),
                    Err(e) => json!({ "error": e.to_string() }),
                };
                insert(&mut f, "key_data", plain);
            }
            f
        }
        Payload::Pke(pke) => json!({ "cache": pke.cache, "data": hex::encode(&pke.data) }),
        Payload::Dh(dh) => {
            let mut f = json!({
                "group": named(dh.group.0, dh.group.name()),
                "value": hex::encode(&dh.value),
                "reserved": dh.reserved,
            });
            if let (Value::Object(f), Value::Object(v)) = (&mut f, validity(&dh.validity)) {
                f.extend(v);
            }
            f
        }
        Payload::Sign(s) => {
            let mut f = json!({
                "sign_type": named(s.sign_type.0, s.sign_type.name()),
                "signature_len": s.signature.len(),
                "signature": hex::encode(&s.signature),
            });
            if let Some(e) = s.eccsi() {
                insert(
                    &mut f,
                    "eccsi",
                    json!({
                        "r": hex::encode(e.r),
                        "s": hex::encode(e.s),
                        "pvt": hex::encode(e.pvt),
                    }),
                );
            }
            f
        }
        Payload::Idr(idr) => {
            let mut f = json!({
                "id_role": named(idr.role.0, idr.role.name()),
                "id_type": named(idr.id_type.0, idr.id_type.name()),
                "id_len": idr.data.len(),
                "id_data_hex": hex::encode(&idr.data),
            });
            if let Some(text) = printable(&idr.data) {
                insert(&mut f, "id_text", json!(text));
            }
            f
        }
        Payload::Sakke(sk) => json!({
            "sakke_params": named(sk.params.0, sk.params.name()),
            "id_scheme": named(sk.id_scheme.0, sk.id_scheme.name()),
            "sakke_data_len": sk.data.len(),
            "sakke_data": hex::encode(&sk.data),
        }),
        Payload::T(ts) => {
            let value = match ts {
                Timestamp::NtpUtc(v) | Timestamp::Ntp(v) => format!("{v:016x}"),
                Timestamp::Counter(v) => format!("{v:08x}"),
            };
            json!({
                "ts_type": named(ts.ts_type().0, ts.ts_type().name()),
                "ts_value": value,
                "ts_value_decimal": ts.t64(),
            })
        }
        Payload::Id(id) => json!({
            "id_type": named(id.id_type.0, id.id_type.name()),
            "id_len": id.data.len(),
            "id_data": String::from_utf8_lossy(&id.data),
            "id_data_hex": hex::encode(&id.data),
        }),
        Payload::Cert(c) => json!({
            "cert_type": named(c.cert_type.0, c.cert_type.name()),
            "cert_data": hex::encode(&c.data),
        }),
        Payload::Chash(c) => json!({
            "hash_func": named(c.hash_func.0, c.hash_func.name()),
            "hash": hex::encode(&c.hash),
        }),
        Payload::V(v) => json!({
            "auth_alg": named(v.auth_alg.0, v.auth_alg.name()),
            "ver_data": hex::encode(&v.ver_data),
        }),
        Payload::Sp(sp) => json!({
            "policy_no": sp.policy_no,
            "prot_type": named(sp.prot_type.0, sp.prot_type.name()),
            "params": sp.params.iter().map(|p| json!({
                "type": named(p.param_type, super::SrtpParam(p.param_type).name()),
                "value": hex::encode(&p.value),
            })).collect::<Vec<_>>(),
        }),
        Payload::Rand(r) => json!({ "rand_len": r.len(), "rand": hex::encode(r) }),
        Payload::Err(e) => json!({
            "err_no": named(e.err_no.0, e.err_no.name()),
            "reserved": e.reserved,
        }),
        Payload::Ext(ext) => {
            let mut f = json!({ "ext_type": named(ext.ext_type().0, ext.ext_type().name()) });
            match ext {
                Extension::KeyId(entries) => {
                    insert(
                        &mut f,
                        "key_ids",
                        Value::Array(
                            entries
                                .iter()
                                .map(|e| {
                                    let t = e.id_type();
                                    let value = match e {
                                        KeyIdEntry::KeyDomain(id) => id.to_string(),
                                        KeyIdEntry::Msk(id) => id.to_string(),
                                        KeyIdEntry::Mtk(id) => id.to_string(),
                                        KeyIdEntry::Other { value, .. } => hex::encode(value),
                                    };
                                    let mut o =
                                        json!({ "type": named(t.0, t.name()), "value": value });
                                    if let KeyIdEntry::Msk(id) = e {
                                        insert(&mut o, "key_group", json!(id.key_group));
                                        insert(&mut o, "key_number", json!(id.key_number));
                                    }
                                    if let KeyIdEntry::Mtk(id) = e {
                                        insert(&mut o, "mtk_id_decimal", json!(id.0));
                                    }
                                    o
                                })
                                .collect(),
                        ),
                    );
                }
                Extension::Other { data, .. } => insert(&mut f, "data", json!(hex::encode(data))),
            }
            f
        }
    };
    if let Value::Object(fields) = fields {
        o.extend(fields);
    }
    o
}

/// The octets as text when they are printable ASCII (an URI), `None` for
/// binary data (a UID).
fn printable(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')).then_some(text)
}

/// Sets `key` of `object` (a JSON object made by `json!`) to `value`.
fn insert(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = object {
        map.insert(key.into(), value);
    }
}

/// The whole message as a JSON object.
pub fn describe(received: &Received) -> Value {
    let m = received.message();
    let h = &m.hdr;
    let mut hdr = json!({
        "version": h.version,
        "data_type": named(h.data_type.0, h.data_type.name()),
        "next_payload": named(
            m.payloads.first().map_or(0, |p| p.payload_type().0),
            m.payloads.first().map_or(Some("Last payload"), |p| p.payload_type().name()),
        ),
        "v": h.v,
        "prf_func": named(h.prf_func.0, h.prf_func.name()),
        "csb_id": format!("{:08x}", h.csb_id),
        "cs_count": h.cs_count,
        "cs_id_map_type": named(h.cs_id_map.map_type().0, h.cs_id_map.map_type().name()),
    });
    if let CsIdMap::GenericId(entries) = &h.cs_id_map {
        let entries = entries
            .iter()
            .map(|e| {
                json!({
                    "cs_id": e.cs_id,
                    "prot_type": named(e.prot_type, super::ProtType(e.prot_type).name()),
                    "s": e.s,
                    "policy_nos": e.policies,
                    "session_data": hex::encode(&e.session_data),
                    "spi": hex::encode(&e.spi),
                })
            })
            .collect();
        insert(&mut hdr, "generic_id_map", Value::Array(entries));
    }
    if let CsIdMap::SrtpId(entries) = &h.cs_id_map {
        insert(&mut hdr, "srtp_id_map", Value::Array(
            entries
                .iter()
                .map(|e| json!({ "policy_no": e.policy_no, "ssrc": format!("{:08x}", e.ssrc), "roc": format!("{:08x}", e.roc) }))
                .collect(),
        ));
    }
    let payloads: Vec<Value> = m
        .payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut o = payload(p);
            let next = m.payloads.get(i + 1).map(|n| n.payload_type());
            o.insert(
                "next_payload".into(),
                named(
                    next.map_or(0, |n| n.0),
                    next.map_or(Some("Last payload"), |n| n.name()),
                ),
            );
            o.insert("offset".into(), json!(received.payload_offset(i)));
            Value::Object(o)
        })
        .collect();
    let mut out = json!({
        "length": received.bytes().len(),
        "hdr": hdr,
        "payloads": payloads,
    });
    if let Some(mac) = received.mac_field() {
        insert(
            &mut out,
            "mac_field",
            json!({
                "payload": mac.payload.name().unwrap_or("Unknown"),
                "offset": mac.offset,
                "len": mac.len,
            }),
        );
    }
    out
}

/// Renders a description as an indented text tree.
pub fn render_text(v: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "MIKEY message, {} octets\n",
        v.get("length").and_then(Value::as_u64).unwrap_or(0)
    ));
    if let Some(hdr) = v.get("hdr") {
        out.push_str("  Common Header (HDR)\n");
        render_fields(hdr, 4, &mut out);
    }
    if let Some(Value::Array(ps)) = v.get("payloads") {
        for p in ps {
            let name = p.get("payload").and_then(Value::as_str).unwrap_or("?");
            let off = p.get("offset").and_then(Value::as_u64).unwrap_or(0);
            out.push_str(&format!("  {name} payload (offset {off})\n"));
            render_fields(p, 4, &mut out);
        }
    }
    if let Some(mac) = v.get("mac_field") {
        out.push_str("  MAC field\n");
        render_fields(mac, 4, &mut out);
    }
    out
}

/// Words shown in capitals in the text tree.
const ACRONYMS: [&str; 19] = [
    "csb", "cs", "id", "prf", "ts", "mac", "rand", "kv", "spi", "srtp", "ssrc", "roc", "ext",
    "mtk", "msk", "dh", "sakke", "eccsi", "pvt",
];

fn label(key: &str) -> String {
    key.split('_')
        .enumerate()
        .map(|(i, w)| {
            if ACRONYMS.contains(&w) {
                w.to_ascii_uppercase()
            } else if i == 0 {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Object(o) if o.len() == 2 && o.contains_key("value") && o.contains_key("name") => {
            Some(format!(
                "{} ({})",
                o.get("name").and_then(Value::as_str).unwrap_or("?"),
                o.get("value").map(|v| v.to_string()).unwrap_or_default()
            ))
        }
        _ => None,
    }
}

fn render_fields(v: &Value, indent: usize, out: &mut String) {
    let Value::Object(o) = v else { return };
    let is_payload = o.contains_key("payload") && o.contains_key("next_payload");
    for (k, val) in o {
        if is_payload && (k == "payload" || k == "offset") {
            continue;
        }
        let pad = " ".repeat(indent);
        if let Some(s) = scalar(val) {
            out.push_str(&format!("{pad}{}: {s}\n", label(k)));
        } else if let Value::Array(items) = val {
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!("{pad}{} [{i}]\n", label(k)));
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}  {s}\n")),
                    None => render_fields(item, indent + 2, out),
                }
            }
        } else {
            out.push_str(&format!("{pad}{}\n", label(k)));
            render_fields(val, indent + 2, out);
        }
    }
}
