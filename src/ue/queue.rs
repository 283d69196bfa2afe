//! The bounded event queue of the receiver and of the driver (docs/profile.md §3,
//! bounds): key events are never pushed out by discard notices.
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

use std::collections::VecDeque;

use super::events::Event;

/// A FIFO of at most `capacity` events. When it is full, a new discard notice is not queued; a
/// new key event takes the place of the oldest queued discard notice, or, when only key events
/// are queued (the consumer has not drained `capacity` of them), of the oldest key event.
#[derive(Debug)]
pub(crate) struct EventQueue {
    events: VecDeque<Event>,
    capacity: usize,
    /// Discard notices among `events`.
    notices: usize,
}

impl EventQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            notices: 0,
        }
    }

    /// Queues `event`; `false` when an event was dropped for it (this notice or an older event).
    pub fn push(&mut self, event: Event) -> bool {
        let kept = if self.events.len() < self.capacity {
            true
        } else if event.is_discard() {
            return false;
        } else {
            let oldest_notice = if self.notices > 0 {
                self.events.iter().position(Event::is_discard)
            } else {
                None
            };
            let dropped = match oldest_notice {
                Some(i) => self.events.remove(i),
                None => self.events.pop_front(),
            };
            if dropped.as_ref().is_some_and(Event::is_discard) {
                self.notices = self.notices.saturating_sub(1);
            }
            false
        };
        if event.is_discard() {
            self.notices = self.notices.saturating_add(1);
        }
        self.events.push_back(event);
        kept
    }

    pub fn pop(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if event.is_discard() {
            self.notices = self.notices.saturating_sub(1);
        }
        Some(event)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbms::{KeyDomainId, MskId};
    use crate::ue::DiscardReason;

    fn notice() -> Event {
        Event::Discarded {
            reason: DiscardReason::Malformed,
        }
    }

    fn key(n: u16) -> Event {
        Event::MskInvalidated {
            key_domain_id: KeyDomainId([0; 3]),
            msk_id: MskId::new(1, n),
        }
    }

    #[test]
    fn key_events_push_out_the_oldest_notice_then_the_oldest_key_event() {
        let mut q = EventQueue::new(3);
        assert!(q.push(key(1)) && q.push(notice()) && q.push(notice()));
        assert!(!q.push(notice()), "a notice does not fit");
        assert!(!q.push(key(2)));
        assert!(!q.push(key(3)));
        assert_eq!(q.len(), 3);
        assert!(!q.push(key(4)), "only key events left: the oldest goes");
        let all: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(all, [key(2), key(3), key(4)]);
        assert!(q.push(notice()));
        assert_eq!(q.pop(), Some(notice()));
        assert_eq!(q.notices, 0);
    }
}
