//! `mbms-keys bmsc status`: what the store says of each configured service —
//! its MSKs (IDs, states, intervals, current MTK ID) and its registrations.
//! Never key material.

use serde_json::{Value, json};

use super::config::Config;
use super::store::{MskState, Store, StoreError};

/// The status of every configured service as one JSON object.
pub fn status(config: &Config, store: &dyn Store) -> Result<Value, StoreError> {
    let counts = store.count_registrations_by_service()?;
    let mut services = Vec::new();
    for s in &config.services {
        let (key_domain, key_group) = s.msk_group();
        let msks: Vec<Value> = store
            .msks_of_group(key_domain, key_group)?
            .iter()
            .map(|m| {
                json!({
                    "msk_id": m.msk_id.to_string(),
                    "state": m.state.as_str(),
                    "seql": m.seql,
                    "sequ": m.sequ,
                    "mtk_next_id": m.mtk_next_id,
                    "current_mtk_id": m.current_mtk.as_ref().map(|c| c.id.0),
                })
            })
            .collect();
        let current = store
            .msks_of_group(key_domain, key_group)?
            .into_iter()
            .find(|m| m.state == MskState::Current);
        services.push(json!({
            "id": s.id,
            "key_domain_id": key_domain.to_string(),
            "key_group": key_group,
            "registrations": counts.get(&s.id).copied().unwrap_or(0),
            "current_msk_id": current.as_ref().map(|m| m.msk_id.to_string()),
            "current_mtk_id": current.as_ref().and_then(|m| m.current_mtk.as_ref().map(|c| c.id.0)),
            "msks": msks,
        }));
    }
    Ok(json!({
        "fqdn": config.fqdn,
        "counter_ceiling": store.counter_ceiling()?,
        "services": services,
    }))
}

/// The status as readable text.
pub fn render(v: &Value) -> String {
    let mut out = format!(
        "BM-SC {} (counter ceiling {})\n",
        v["fqdn"].as_str().unwrap_or("?"),
        v["counter_ceiling"]
    );
    for s in v["services"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "service {}: key domain {}, key group {}, {} registrations, current MSK {}, current MTK {}\n",
            s["id"].as_str().unwrap_or("?"),
            s["key_domain_id"].as_str().unwrap_or("?"),
            s["key_group"],
            s["registrations"],
            s["current_msk_id"].as_str().unwrap_or("-"),
            s["current_mtk_id"]
                .as_u64()
                .map_or_else(|| "-".to_string(), |id| id.to_string()),
        ));
        for m in s["msks"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  MSK {} {}: MTK IDs ({}..={}], next MTK ID {}\n",
                m["msk_id"].as_str().unwrap_or("?"),
                m["state"].as_str().unwrap_or("?"),
                m["seql"],
                m["sequ"],
                m["mtk_next_id"],
            ));
        }
    }
    out
}
