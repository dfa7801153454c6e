//! The inspection pack's model (`haven report inspection`): the lists an Ofsted inspector asks
//! for at 8am on the first day (School Inspection Handbook, para 113): referrals to the DSL with
//! how each was resolved, referrals to the LADO, pupils with open social-care cases or
//! multi-agency plans, and outcomes overdue. Pupils appear by UPN, initials and year group.
//!
//! Pure: the caller opens what it lists and passes it in; templates render it.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct InspectionDoc {
    pub school: String,
    pub title: String,
    pub generated_at: String,
    pub generated_by: String,
    /// The first day the lists cover.
    pub since: String,
    pub referrals: Vec<ReferralRow>,
    pub lado: Vec<ReferralRow>,
    pub plans: Vec<PlanRow>,
    pub overdue: Vec<OverdueRow>,
}

/// A concern that reached the DSL for a decision.
#[derive(Debug, Clone, Serialize)]
pub struct ReferralRow {
    pub incident: i64,
    /// When it happened.
    pub date: String,
    /// "A100000000003 A.K. (Year 9)"
    pub pupils: String,
    pub category: String,
    /// The recorder's roles ("teacher, tutor"), not their name.
    pub recorded_by: String,
    /// "Referred to children's social care", or "Awaiting a decision".
    pub decision: String,
    /// "CSC on 2026-11-18 (ref 2026/77)", "no".
    pub referred_on: String,
    /// The outcome as recorded, with who and when, or what is still awaited.
    pub resolution: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    pub plan: i64,
    pub pupil: String,
    pub kind: String,
    pub starts: String,
    pub next_review: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverdueRow {
    pub incident: i64,
    pub pupils: String,
    pub category: String,
    pub due: String,
    pub owner: String,
}

impl InspectionDoc {
    /// Every row and count as text, for the manifest's check that nothing is left out.
    pub fn counts(&self) -> String {
        format!(
            "{} referrals to the DSL, {} LADO referrals, {} open plans, {} overdue outcomes",
            self.referrals.len(),
            self.lado.len(),
            self.plans.len(),
            self.overdue.len()
        )
    }
}
