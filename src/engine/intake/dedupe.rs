//! Remembers recent `X-GitHub-Delivery` ids so a redelivered webhook is handled once.
//!
//! Bounded: the oldest ids are forgotten first. No IO.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` delivery ids.
#[derive(Debug)]
pub struct DeliveryLog {
    capacity: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl DeliveryLog {
    /// Remembers at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        DeliveryLog {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// True when `id` was recorded.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Records `id`; false when it was already recorded (a duplicate).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_caught_and_old_ids_forgotten() {
        let mut d = DeliveryLog::new(2);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert!(d.first_time("a"), "a was evicted");
        assert!(!d.first_time("c"));
    }
}
