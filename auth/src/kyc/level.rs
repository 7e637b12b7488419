//! Levels from labels, and the level gate actions pass through. Pure: no store, no clock.

use super::config::{GatedAction, KycConfig, LevelRule};
use super::error::KycError;
use crate::store::LabelRow;

/// The scope of labels only the service sets; only they count towards a level.
pub const PRIVATE_SCOPE: &str = "private";
/// The scope of labels a user sets on itself.
pub const PUBLIC_SCOPE: &str = "public";

/// The level `labels` give under `rules`: the highest level `L` such that every rule of
/// every level up to `L` holds. A document verified without a verified phone is still level
/// 1, as in Barong. Public labels never count: a user could set those itself.
pub fn level_of(rules: &[LevelRule], labels: &[LabelRow]) -> i64 {
    let holds = |rule: &LevelRule| {
        labels
            .iter()
            .any(|l| l.scope == PRIVATE_SCOPE && l.key == rule.key && l.value == rule.value)
    };
    let top = rules.iter().map(|r| r.level).max().unwrap_or(0);
    let mut level = 0;
    // Bounded by the rules' count (at most LEVEL_RULES_MAX levels).
    for candidate in 1..=top {
        if !rules.iter().filter(|r| r.level == candidate).all(holds) {
            break;
        }
        level = candidate;
    }
    assert!((0..=top).contains(&level));
    level
}

/// Refuses `action` below the level it needs.
pub fn gate(config: &KycConfig, level: i64, action: GatedAction) -> Result<(), KycError> {
    let required = config.level_min(action);
    if level >= required {
        Ok(())
    } else {
        Err(KycError::LevelTooLow { required, level })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(key: &str, scope: &str) -> LabelRow {
        LabelRow {
            key: key.to_owned(),
            scope: scope.to_owned(),
            value: "verified".to_owned(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn levels_need_every_lower_rule_and_private_labels() {
        let rules = KycConfig::default().level_rules;
        assert_eq!(level_of(&rules, &[]), 0);
        assert_eq!(level_of(&rules, &[label("email", PRIVATE_SCOPE)]), 1);
        let skipped = [
            label("email", PRIVATE_SCOPE),
            label("document", PRIVATE_SCOPE),
        ];
        assert_eq!(level_of(&rules, &skipped), 1);
        let all = [
            label("email", PRIVATE_SCOPE),
            label("phone", PRIVATE_SCOPE),
            label("document", PRIVATE_SCOPE),
        ];
        assert_eq!(level_of(&rules, &all), 3);
        let public = [label("email", PRIVATE_SCOPE), label("phone", PUBLIC_SCOPE)];
        assert_eq!(level_of(&rules, &public), 1);
    }

    #[test]
    fn the_gate_follows_the_configured_levels() {
        let mut config = KycConfig::default();
        assert!(gate(&config, 1, GatedAction::Trade).is_ok());
        assert!(matches!(
            gate(&config, 1, GatedAction::Withdraw),
            Err(KycError::LevelTooLow {
                required: 2,
                level: 1
            })
        ));
        assert!(gate(&config, 0, GatedAction::Trade).is_err());
        config.withdraw_level_min = 3;
        assert!(gate(&config, 2, GatedAction::Withdraw).is_err());
    }
}
