//! New transport keys (docs/mcx.md §3.4): the KMS offers a client's staged TrK (and InK) as
//! `NewTransportKey`/`NewIntegrityKey` in its KmsInit and KmsKeyProv answers ([`offer`]),
//! encrypted and signed under the client's current keys by [`super::transport::protect`]; the
//! client, once the whole response has verified, adopts them as its new trusted record
//! ([`adopt`]).

use super::messages::{KeyContent, NewKey, NewKeys};
use super::transport::TransportKeys;
use super::{KeyId, KmsError};

/// The `NewKeys` a response carries to move a client from `current` to `staged`: the staged
/// TrK always, the staged InK when it is not the current one.
#[must_use]
pub fn offer(current: &TransportKeys, staged: &TransportKeys) -> NewKeys {
    let current_ink = current.ink.as_ref().map(|(id, _)| *id);
    NewKeys {
        transport: vec![NewKey {
            id: staged.trk_id,
            key: KeyContent::Plain(staged.trk.clone()),
        }],
        integrity: staged
            .ink
            .iter()
            .filter(|(id, _)| Some(*id) != current_ink)
            .map(|(id, k)| NewKey {
                id: *id,
                key: KeyContent::Plain(k.clone()),
            })
            .collect(),
    }
}

fn key32(k: &NewKey, what: &str) -> Result<super::Secret, KmsError> {
    match &k.key {
        KeyContent::Plain(s) if s.expose().len() == 32 => Ok(s.clone()),
        KeyContent::Plain(_) => Err(KmsError::InvalidNewKey(format!(
            "the new {what} is not 32 octets"
        ))),
        KeyContent::Encrypted(_) => Err(KmsError::InvalidNewKey(format!(
            "the new {what} is still encrypted"
        ))),
    }
}

/// The client side: the trusted record that replaces `current` after a verified response
/// carrying `new`, or `None` when it carries no new key.
///
/// \[CHOICE\] docs/mcx.md §3.4: at most one `NewTransportKey` and one `NewIntegrityKey` are
/// adopted (the schema allows more, with no rule to choose among them); each must be 32 octets;
/// the new TrK-ID must differ from the current TrK-ID and InK-ID, and from the new InK-ID. A
/// new InK alone keeps the TrK; a new TrK alone keeps the InK. The mode does not change.
///
/// # Errors
/// [`KmsError::InvalidNewKey`].
pub fn adopt(current: &TransportKeys, new: &NewKeys) -> Result<Option<TransportKeys>, KmsError> {
    if new.is_empty() {
        return Ok(None);
    }
    if new.transport.len() > 1 || new.integrity.len() > 1 {
        return Err(KmsError::InvalidNewKey(
            "more than one NewTransportKey or NewIntegrityKey".into(),
        ));
    }
    let current_ink: Option<KeyId> = current.ink.as_ref().map(|(id, _)| *id);
    let mut next = current.clone();
    if let Some(t) = new.transport.first() {
        if t.id == current.trk_id || Some(t.id) == current_ink {
            return Err(KmsError::InvalidNewKey(
                "the new TrK-ID is already in use".into(),
            ));
        }
        next.trk_id = t.id;
        next.trk = key32(t, "TrK")?;
    }
    if let Some(i) = new.integrity.first() {
        if i.id == next.trk_id || i.id == current.trk_id || Some(i.id) == current_ink {
            return Err(KmsError::InvalidNewKey(
                "the new InK-ID is already in use".into(),
            ));
        }
        next.ink = Some((i.id, key32(i, "InK")?));
    }
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::Secret;
    use crate::kms::transport::Mode;

    fn keys(trk_id: u32, ink: Option<u32>) -> TransportKeys {
        TransportKeys {
            trk_id: KeyId(trk_id),
            trk: Secret::new(vec![trk_id as u8; 32]),
            ink: ink.map(|i| (KeyId(i), Secret::new(vec![i as u8; 32]))),
            mode: Mode::Bound,
        }
    }

    #[test]
    fn offer_then_adopt_gives_the_staged_record() {
        let current = keys(1, Some(2));
        for staged in [keys(3, Some(2)), keys(3, Some(4)), keys(3, None)] {
            let n = offer(&current, &staged);
            assert_eq!(n.transport.len(), 1);
            let next = adopt(&current, &n).unwrap().unwrap();
            assert_eq!(next.trk_id, staged.trk_id);
            assert_eq!(next.trk, staged.trk);
            // A staged record without an InK keeps the current one (offer sends none).
            let want = staged.ink.clone().or(current.ink.clone());
            assert_eq!(next.ink.as_ref().map(|i| i.0), want.as_ref().map(|i| i.0));
            assert_eq!(next.mode, Mode::Bound);
        }
        assert!(adopt(&current, &NewKeys::default()).unwrap().is_none());
    }

    #[test]
    fn adopt_refuses_what_it_cannot_use() {
        let current = keys(1, Some(2));
        let nk = |id: u32, len: usize| NewKey {
            id: KeyId(id),
            key: KeyContent::Plain(Secret::new(vec![9; len])),
        };
        let bad = [
            NewKeys {
                transport: vec![nk(3, 32), nk(4, 32)],
                integrity: vec![],
            },
            NewKeys {
                transport: vec![nk(3, 31)],
                integrity: vec![],
            },
            NewKeys {
                transport: vec![nk(1, 32)],
                integrity: vec![],
            },
            NewKeys {
                transport: vec![nk(2, 32)],
                integrity: vec![],
            },
            NewKeys {
                transport: vec![nk(3, 32)],
                integrity: vec![nk(3, 32)],
            },
            NewKeys {
                transport: vec![],
                integrity: vec![nk(5, 33)],
            },
        ];
        for n in &bad {
            assert!(
                matches!(adopt(&current, n), Err(KmsError::InvalidNewKey(_))),
                "{n:?}"
            );
        }
    }
}
