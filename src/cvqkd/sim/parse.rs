//! Parsing and checking `--attack` specifications.

use super::SimError;
use super::channel::Attack;

/// Largest cloner noise accepted, SNU.
pub const MAX_CLONER_NOISE_SNU: f64 = 100.0;
/// Largest tap loss accepted, dB.
pub const MAX_TAP_LOSS_DB: f64 = 60.0;

/// Parse `none`, `cloner:XI`, `intercept-resend[:FRACTION]` or `tap:DB`.
pub fn parse_attack(s: &str) -> Result<Attack, SimError> {
    let (kind, arg) = match s.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (s, None),
    };
    let number = |a: Option<&str>, what: &str| -> Result<f64, SimError> {
        let a =
            a.ok_or_else(|| SimError::Attack(format!("{kind} needs {what}, e.g. {kind}:0.05")))?;
        a.parse()
            .map_err(|_| SimError::Attack(format!("{a:?} is not a number ({what})")))
    };
    let attack = match kind {
        "none" if arg.is_none() => Attack::None,
        "cloner" => Attack::Cloner {
            excess_noise_snu: number(arg, "the added excess noise in SNU")?,
        },
        "intercept-resend" => Attack::InterceptResend {
            fraction: arg.map_or(Ok(1.0), |a| number(Some(a), "the fraction of pulses"))?,
        },
        "tap" => Attack::Tap {
            loss_db: number(arg, "the tap loss in dB")?,
        },
        _ => {
            return Err(SimError::Attack(format!(
                "{s:?}: expected none, cloner:XI, intercept-resend[:FRACTION] or tap:DB"
            )));
        }
    };
    Ok(attack)
}

/// Check an attack's numbers (a cloner needs a lossy line, T < 1).
pub fn validate_attack(attack: &Attack, transmittance: f64) -> Result<(), SimError> {
    let bad = |m: String| Err(SimError::Attack(m));
    match *attack {
        Attack::None => Ok(()),
        Attack::Cloner {
            excess_noise_snu: x,
        } if !(0.0..=MAX_CLONER_NOISE_SNU).contains(&x) => bad(format!(
            "cloner noise {x} SNU must be in [0, {MAX_CLONER_NOISE_SNU}]"
        )),
        Attack::Cloner { .. } if transmittance >= 1.0 => {
            bad("a cloner needs a lossy line (distance > 0)".into())
        }
        Attack::InterceptResend { fraction: f } if !(f > 0.0 && f <= 1.0) => {
            bad(format!("intercept-resend fraction {f} must be in (0, 1]"))
        }
        Attack::Tap { loss_db: d } if !(0.0..=MAX_TAP_LOSS_DB).contains(&d) => {
            bad(format!("tap loss {d} dB must be in [0, {MAX_TAP_LOSS_DB}]"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_parse_and_errors_name_the_flag() {
        assert_eq!(parse_attack("none").unwrap(), Attack::None);
        assert_eq!(parse_attack("tap:3").unwrap(), Attack::Tap { loss_db: 3.0 });
        assert_eq!(
            parse_attack("intercept-resend").unwrap(),
            Attack::InterceptResend { fraction: 1.0 }
        );
        assert_eq!(
            parse_attack("cloner:0.05").unwrap(),
            Attack::Cloner {
                excess_noise_snu: 0.05
            }
        );
        let e = parse_attack("cloner").unwrap_err().to_string();
        assert!(e.starts_with("--attack:"), "{e}");
        assert!(parse_attack("laser").is_err());
        assert!(validate_attack(&Attack::Tap { loss_db: -1.0 }, 0.5).is_err());
    }
}
