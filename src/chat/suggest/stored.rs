//! Reading decisions stored by earlier versions (issue 19).

use serde::{Deserialize, Serialize};

use super::{Decision, UsedRec};
use crate::chat::ChatResult;
use crate::store::codec;

/// A decision as stored before `outcome` existed (still read).
#[derive(Serialize, Deserialize)]
pub(crate) struct DecisionV1 {
    pub(crate) id: u64,
    pub(crate) conversation_id: u64,
    pub(crate) agent: u64,
    pub(crate) time_ms: i64,
    pub(crate) x: Vec<f64>,
    pub(crate) intent: u8,
    pub(crate) shown: Vec<u64>,
    pub(crate) eligible: u32,
    pub(crate) holdout: bool,
    pub(crate) pscore: f64,
    pub(crate) used: Option<UsedRec>,
    pub(crate) applied: bool,
}

impl From<DecisionV1> for Decision {
    fn from(d: DecisionV1) -> Decision {
        Decision {
            id: d.id,
            conversation_id: d.conversation_id,
            agent: d.agent,
            time_ms: d.time_ms,
            x: d.x,
            intent: d.intent,
            shown: d.shown,
            eligible: d.eligible,
            holdout: d.holdout,
            pscore: d.pscore,
            used: d.used,
            applied: d.applied,
            outcome: None,
        }
    }
}

/// Reads a stored decision, in the current or the previous form.
pub fn decode_decision(bytes: &[u8]) -> ChatResult<Decision> {
    match codec::decode::<Decision>(bytes) {
        Ok(d) => Ok(d),
        Err(e) => codec::decode::<DecisionV1>(bytes)
            .map(Decision::from)
            .map_err(|_| e.into()),
    }
}
