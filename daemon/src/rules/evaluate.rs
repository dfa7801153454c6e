//! The decision for one message: every rule whose conditions hold applies, in file-then-rule
//! order, until one says `stop`. Pure: the same facts always give the same decision.
//!
//! - Category: the one staff named wins, unless a rule raises it to a safeguarding category;
//!   otherwise the last rule's `set_category`; otherwise the default. A rule never moves an
//!   incident out of safeguarding.
//! - Visibility: the final category's, narrowed by every matching rule's `visibility`.
//! - Priority: urgent if any matching rule says so. Outcome: the shortest `outcome_within`;
//!   the escalation ladder gathers every matching rule's steps.
//! - Recipients are resolved last, against the final visibility, so nobody is alerted to an
//!   incident they may not see.
//! - A pupil who has left (or is not yet on roll) still has a DSL: when any rule alerts, the
//!   DSL team is alerted too; when every pupil has left, only the DSL team is alerted or
//!   escalated to. Their HouseM and tutor are never alerted about them.
//!
//! Once AI triage has stored a suggestion (or waited in vain), [`RuleSet::evaluate_ai`]
//! evaluates again only the rules with `when.ai_risk`, on the incident as it was filed: its
//! category and visibility stay as they are (a `set_category` or `visibility` of such a rule is
//! not applied after filing), so what they decide can only be added to what filing decided.

use super::compile::{Conditions, RuleSet, Target};
use super::duration::format_duration;
use super::recipients::Resolver;
use super::{Decision, Facts, Priority, Rung};
use crate::directory::Pupil;
use crate::message::Message;
use crate::visibility::Visibility;
use chrono::Duration;

/// The incident as filing decided it, for [`RuleSet::evaluate_ai`].
pub struct Filed<'a> {
    /// Canonical category name.
    pub category: &'a str,
    pub visibility: &'a Visibility,
    /// No suggestion has come this long after filing: the rules whose `ai_timeout` has passed
    /// (with `on_ai_timeout = "alert"`) hold as if their `ai_risk` were met.
    pub waited: Option<Duration>,
}

/// Facts worked out once per message, shared by every rule.
struct Seen<'a> {
    facts: &'a Facts<'a>,
    /// Known pupils of the incident (on roll or not).
    pupils: Vec<&'a Pupil>,
    /// Which `when.text` patterns match anywhere in subject, note or body.
    text: Vec<bool>,
    /// Lower-case address of the original sender (the forwarded message's, else this one's).
    sender: Option<String>,
    attachments: bool,
    /// See [`Filed::waited`].
    waited: Option<Duration>,
}

impl RuleSet {
    /// Applies the rules to one message.
    pub fn evaluate(&self, facts: &Facts) -> Decision {
        self.decide(facts, None)
    }

    /// Applies only the rules with `when.ai_risk` to an incident already `filed`, with the
    /// suggestion's risk in `facts.ai_risk` (None: no suggestion). The decision's recipients,
    /// priority and outcome deadline are what those rules ask for; the caller adds only what
    /// filing did not already do.
    pub fn evaluate_ai(&self, facts: &Facts, filed: &Filed) -> Decision {
        self.decide(facts, Some(filed))
    }

    fn decide(&self, facts: &Facts, filed: Option<&Filed>) -> Decision {
        let mut seen = self.see(facts);
        seen.waited = filed.and_then(|f| f.waited);
        let mut notes = Vec::new();
        let ident = facts.identification;

        let named = match filed {
            Some(_) => None,
            None => ident.category.as_deref().and_then(|n| self.category_index(n)),
        };
        if let (None, Some(n), None) = (filed, &ident.category, named) {
            notes.push(format!("category {n:?} named by staff is not configured; using the rules"));
        }
        let as_filed = filed.and_then(|f| self.category_index(f.category));
        let mut category = as_filed.or(named).unwrap_or(self.default);
        let mut category_reason = match (filed, named) {
            (Some(_), _) => "as filed".to_string(),
            (None, Some(_)) => format!("named by staff ({})", ident.category_how.as_deref().unwrap_or("marker")),
            (None, None) => "no category named: the default".to_string(),
        };

        let mut matched = Vec::new();
        let mut fired = Vec::new();
        for rule in &self.rules {
            if filed.is_some() && rule.when.ai_risk.is_none() {
                continue;
            }
            if !self.holds(&rule.when, &seen, category) {
                continue;
            }
            matched.push(rule.label.clone());
            fired.push(rule);
            if filed.is_some() {
                if rule.then.set_category.is_some() || rule.then.visibility.is_some() {
                    notes.push(format!("{}: category and visibility are not changed after filing", rule.label));
                }
                if rule.then.stop {
                    break;
                }
                continue;
            }
            if let Some(to) = rule.then.set_category.filter(|&to| to != category) {
                let (from_sg, to_sg) = (self.is_safeguarding(category), self.is_safeguarding(to));
                let name = |i: usize| self.list.get(i).map(|c| c.name.as_str()).unwrap_or("");
                let raises = to_sg && !from_sg;
                if named.is_some() && !raises {
                    notes.push(format!("{}: kept {:?} named by staff rather than {:?}", rule.label, name(category), name(to)));
                } else if from_sg && !to_sg {
                    notes.push(format!("{}: kept safeguarding category {:?} rather than {:?}", rule.label, name(category), name(to)));
                } else {
                    category = to;
                    category_reason = format!("set by rule {}", rule.label);
                }
            }
            if rule.then.stop {
                break;
            }
        }

        let visibility = match filed {
            Some(f) => f.visibility.clone(),
            None => {
                let base = self.list.get(category).map(|c| c.visibility.clone()).unwrap_or_else(Visibility::dsl_team);
                fired.iter().filter_map(|r| r.then.visibility.as_ref()).fold(base, |v, r| v.restrict(r))
            }
        };
        let priority = fired.iter().filter_map(|r| r.then.priority).max().unwrap_or(Priority::Normal);
        let outcome_within = fired.iter().filter_map(|r| r.then.outcome_within).min();
        let digest = fired.iter().any(|r| r.then.digest);
        let alert_on_backfill = fired.iter().any(|r| r.then.alert_on_backfill);

        // Who hears about it: decided by the pupils the incident is about, never a witness's
        // or a mentioned pupil's own staff.
        let about = crate::visibility::about(ident.pupils.iter().map(|m| (m.pupil_id, m.role.as_str())));
        let on_roll: Vec<&Pupil> = seen.pupils.iter().copied().filter(|p| p.on_roll() && about.contains(&p.id)).collect();
        let left: Vec<&Pupil> = seen.pupils.iter().copied().filter(|p| !p.on_roll()).collect();
        let mut recipients = Vec::new();
        let mut steps: Vec<(Duration, Vec<(&Target, &str)>)> = Vec::new();
        for p in &left {
            notes.push(format!(
                "pupil {} left the school on {}: the DSL team is told, and decides whether to pass it on",
                p.id,
                p.left_on.map(|d| d.to_string()).unwrap_or_default()
            ));
        }
        let resolver =
            Resolver { directory: facts.directory, visibility: &visibility, pupils: &on_roll, any_pupil: !ident.pupils.is_empty() };
        for rule in &fired {
            for t in &rule.then.alert {
                resolver.resolve(t, &rule.label, "", &mut recipients, &mut notes);
            }
            for (after, targets) in &rule.then.escalate {
                let at = match steps.iter().position(|(a, _)| a == after) {
                    Some(i) => i,
                    None => {
                        steps.push((*after, Vec::new()));
                        steps.len() - 1
                    }
                };
                if let Some((_, list)) = steps.get_mut(at) {
                    list.extend(targets.iter().map(|t| (t, rule.label.as_str())));
                }
            }
        }
        steps.sort_by_key(|(after, _)| *after);
        if outcome_within.is_none() {
            steps.clear();
        }
        // A concern about a pupil who has left (or is not yet on roll) reaches the DSL team,
        // never nobody: when every pupil has left, only the DSL team hears of it.
        let everyone_left = !left.is_empty() && on_roll.is_empty();
        if everyone_left {
            recipients.retain(|r| {
                let dsl = is_dsl_team(facts, r.staff_id);
                if !dsl {
                    notes.push(format!("alert {}: not sent, every pupil of this incident has left the school", r.why));
                }
                dsl
            });
        }
        if !left.is_empty() && fired.iter().any(|r| !r.then.alert.is_empty()) {
            let team = Target::Role(crate::directory::Role::Dsl);
            let deputies = Target::Role(crate::directory::Role::Ddsl);
            for t in [&team, &deputies] {
                resolver.resolve(t, "a pupil of this incident has left the school", "", &mut recipients, &mut notes);
            }
        }
        let escalation = steps
            .into_iter()
            .map(|(after, targets)| {
                let mut rung = Vec::new();
                let context = format!("escalation after {}: ", format_duration(after));
                let resolver =
                    Resolver { directory: facts.directory, visibility: &visibility, pupils: &on_roll, any_pupil: !ident.pupils.is_empty() };
                for (t, label) in targets {
                    resolver.resolve(t, label, &context, &mut rung, &mut notes);
                }
                if everyone_left {
                    rung.retain(|r| is_dsl_team(facts, r.staff_id));
                }
                Rung { after, recipients: rung }
            })
            .filter(|rung| !rung.recipients.is_empty() || !everyone_left)
            .collect();

        Decision {
            category: self.list.get(category).map(|c| c.name.clone()).unwrap_or_default(),
            category_reason,
            priority,
            visibility,
            recipients,
            outcome_within,
            escalation,
            matched,
            digest,
            alert_on_backfill,
            notes,
        }
    }

    fn is_safeguarding(&self, i: usize) -> bool {
        self.list.get(i).is_some_and(|c| c.safeguarding)
    }

    fn see<'a>(&self, facts: &'a Facts<'a>) -> Seen<'a> {
        let msg = facts.message;
        let mut text = vec![false; self.text.len()];
        if !text.is_empty() {
            for part in text_parts(msg) {
                self.text.mark(part, &mut text);
            }
        }
        let sender = msg.forwarded.as_ref().and_then(|f| f.from.as_ref()).or(msg.from.as_ref()).map(|a| a.address.trim().to_lowercase());
        Seen {
            facts,
            pupils: facts.identification.pupils.iter().filter_map(|m| facts.directory.pupil(m.pupil_id)).collect(),
            text,
            sender,
            attachments: msg.attachments.iter().any(|a| !a.inline),
            waited: None,
        }
    }

    fn holds(&self, w: &Conditions, seen: &Seen<'_>, category: usize) -> bool {
        if w.category.as_ref().is_some_and(|cs| !cs.contains(&category)) || w.category_not.contains(&category) {
            return false;
        }
        if w.safeguarding.is_some_and(|want| want != self.is_safeguarding(category)) {
            return false;
        }
        if w.text.is_some_and(|i| !seen.text.get(i).copied().unwrap_or(false)) {
            return false;
        }
        if let Some(list) = &w.sender
            && !seen.sender.as_ref().is_some_and(|s| list.contains(s))
        {
            return false;
        }
        if let Some(domains) = &w.sender_domain {
            let domain = seen.sender.as_deref().and_then(|s| s.rsplit_once('@')).map(|(_, d)| d);
            let fits = domain.is_some_and(|d| {
                domains.iter().any(|want| d == want || d.strip_suffix(want.as_str()).is_some_and(|rest| rest.ends_with('.')))
            });
            if !fits {
                return false;
            }
        }
        if let Some(pc) = &w.pupil
            && !seen.pupils.iter().any(|p| pc.holds(p))
        {
            return false;
        }
        if w.attachments.is_some_and(|want| want != seen.attachments) {
            return false;
        }
        if let Some((qi, at_least, cats)) = &w.history {
            let this_one = i64::from(cats.is_empty() || cats.contains(&category));
            let hit = seen
                .facts
                .identification
                .pupils
                .iter()
                .any(|m| seen.facts.history.get(m.pupil_id, *qi).saturating_add(this_one) >= *at_least);
            if !hit {
                return false;
            }
        }
        if let Some(level) = w.ai_risk {
            let met = seen.facts.ai_risk.is_some_and(|r| r >= level);
            let timed_out = w.ai_timeout.zip(seen.waited).is_some_and(|(limit, waited)| waited >= limit);
            if !met && !timed_out {
                return false;
            }
        }
        true
    }
}

fn is_dsl_team(facts: &Facts<'_>, staff_id: i64) -> bool {
    facts.directory.staff.iter().any(|s| s.id == staff_id && s.is_dsl_team())
}

/// Where `when.text` looks: subjects, the note, the body, and forwarded originals that came
/// as attachments (inline forwards are already part of the body).
fn text_parts(msg: &Message) -> impl Iterator<Item = &str> {
    let chain = msg.forward_chain.iter().flat_map(|f| f.subject.as_deref().into_iter().chain(f.attached.then_some(f.body.as_str())));
    msg.subject
        .as_deref()
        .into_iter()
        .chain(msg.note.as_deref())
        .chain(std::iter::once(msg.text.as_str()))
        .chain(msg.reply_text.as_deref())
        .chain(chain)
        .chain(msg.forwarded.as_ref().filter(|f| f.attached).map(|f| f.body.as_str()))
}
