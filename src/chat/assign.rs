//! Auto-assignment: among agents online and under their cap, the one with the fewest open
//! conversations; ties go to the one assigned least recently (then the lowest id, so the
//! choice is deterministic). Nobody eligible: the conversation waits unassigned (the queue)
//! and is assigned when an agent comes online or frees a slot.

/// One agent as assignment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub user_id: u64,
    pub online: bool,
    /// Active (open or in progress) conversations assigned now.
    pub open: u32,
    pub cap: u32,
    /// When this agent was last auto-assigned (0: never).
    pub last_assigned_ms: i64,
}

pub fn pick(candidates: &[Candidate]) -> Option<u64> {
    candidates
        .iter()
        .filter(|c| c.online && c.open < c.cap)
        .min_by_key(|c| (c.open, c.last_assigned_ms, c.user_id))
        .map(|c| c.user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(user_id: u64, online: bool, open: u32, last: i64) -> Candidate {
        Candidate {
            user_id,
            online,
            open,
            cap: 2,
            last_assigned_ms: last,
        }
    }

    #[test]
    fn fewest_open_then_least_recently_assigned() {
        assert_eq!(pick(&[c(1, true, 1, 0), c(2, true, 0, 50)]), Some(2));
        assert_eq!(pick(&[c(1, true, 1, 100), c(2, true, 1, 50)]), Some(2));
        assert_eq!(pick(&[c(3, true, 0, 0), c(2, true, 0, 0)]), Some(2));
    }

    #[test]
    fn offline_and_full_agents_are_never_picked() {
        assert_eq!(pick(&[c(1, false, 0, 0), c(2, true, 2, 0)]), None);
        assert_eq!(pick(&[c(1, false, 0, 0), c(2, true, 1, 0)]), Some(2));
        assert_eq!(pick(&[]), None);
    }
}
