//! Sweeps on a fleet: which shard this process is, read from the batch system that started
//! it (Kubernetes Indexed Jobs, Slurm job arrays), how long a continuous sweep runs, and a
//! clean stop on SIGINT or SIGTERM. No coordinator: the batch system hands out the shard
//! indices, and `strata report merge` ([`crate::report`]) checks afterwards that the shards
//! make up the whole range.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The environment variable a Kubernetes Indexed Job sets in each pod: its index, from 0.
pub const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The Slurm array task's id (from `SLURM_ARRAY_TASK_MIN`, which need not be 0).
pub const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
/// How many tasks the Slurm array has.
pub const SLURM_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
/// The array's lowest task id.
pub const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
/// The array's highest task id.
pub const SLURM_MAX: &str = "SLURM_ARRAY_TASK_MAX";
/// The array's step (`--array=1-7:2`); Slurm sets 1 for a plain range.
pub const SLURM_STEP: &str = "SLURM_ARRAY_TASK_STEP";

/// Resolves `--shard` and `--shard-count` to `(index, count)`.
///
/// - no `--shard`: the whole range, `(0, 1)` (the environment is not read);
/// - `--shard I/N`: that shard (the environment is not read: an explicit shard wins);
/// - `--shard env`: from the environment, through `env`: [`K8S_INDEX`] with the count
///   from `--shard-count` (a Job does not export its `completions`), or Slurm's
///   [`SLURM_ID`] with [`SLURM_COUNT`], [`SLURM_MIN`], [`SLURM_MAX`] and [`SLURM_STEP`]
///   (the index is `(id - min) / step`; `--shard-count`, if given, must agree).
///
/// Every error is a usage error naming the option or variable and what is wrong with it.
pub fn resolve_shard(
    shard: Option<&str>,
    shard_count: Option<u64>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(u64, u64), String> {
    match shard {
        None if shard_count.is_some() => {
            Err("--shard-count goes with --shard env (the index comes from the environment)".into())
        }
        None => Ok((0, 1)),
        Some("env") => from_env(shard_count, env),
        Some(_) if shard_count.is_some() => {
            Err("--shard-count goes with --shard env; --shard I/N already gives the count".into())
        }
        Some(text) => parse_shard(text),
    }
}

/// Parses `I/N` with `0 <= I < N`.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--shard takes I/N (0 <= I < N) or env, got {text:?}");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n) = (
        i.parse::<u64>().map_err(|_| bad())?,
        n.parse::<u64>().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(format!("--shard {text}: need 0 <= I < N"));
    }
    Ok((i, n))
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("--shard env: {name}={value:?} is not a whole number"))
}

fn from_env(
    shard_count: Option<u64>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(u64, u64), String> {
    if shard_count == Some(0) {
        return Err("--shard-count must be at least 1".into());
    }
    match (env(K8S_INDEX), env(SLURM_ID)) {
        (Some(_), Some(_)) => Err(format!(
            "--shard env: both {K8S_INDEX} (Kubernetes) and {SLURM_ID} (Slurm) are set, so the \
             shard is ambiguous; pass --shard I/N"
        )),
        (None, None) => Err(format!(
            "--shard env: neither {K8S_INDEX} (a Kubernetes Indexed Job) nor {SLURM_ID} (a Slurm \
             array job) is set; pass --shard I/N outside those"
        )),
        (Some(index), None) => {
            let index = number(K8S_INDEX, &index)?;
            let count = shard_count.ok_or_else(|| {
                format!(
                    "--shard env: {K8S_INDEX}={index} needs --shard-count N (the Job's \
                     completions), which Kubernetes does not put in the environment"
                )
            })?;
            if index >= count {
                return Err(format!(
                    "--shard env: {K8S_INDEX}={index} is not below --shard-count {count}"
                ));
            }
            Ok((index, count))
        }
        (None, Some(id)) => {
            let id = number(SLURM_ID, &id)?;
            let get = |name: &str| {
                env(name)
                    .ok_or_else(|| format!("--shard env: {SLURM_ID} is set but {name} is not"))
                    .and_then(|value| number(name, &value))
            };
            let count = get(SLURM_COUNT)?;
            let min = get(SLURM_MIN)?;
            let max = get(SLURM_MAX)?;
            let step = match env(SLURM_STEP) {
                Some(value) => number(SLURM_STEP, &value)?,
                None => 1,
            };
            if count == 0 || step == 0 {
                return Err(format!(
                    "--shard env: {SLURM_COUNT}={count} and {SLURM_STEP}={step} must be at least 1"
                ));
            }
            // An array such as `--array=0,3,7` has no step that maps ids to 0..count.
            let progression = (count - 1)
                .checked_mul(step)
                .and_then(|span| min.checked_add(span));
            if progression != Some(max) {
                return Err(format!(
                    "--shard env: the Slurm array's task ids are not evenly spaced ({SLURM_MIN}={min}, \
                     {SLURM_MAX}={max}, {SLURM_STEP}={step}, {SLURM_COUNT}={count}); submit it \
                     as --array=A-B or --array=A-B:S"
                ));
            }
            if id < min || id > max || (id - min) % step != 0 {
                return Err(format!(
                    "--shard env: {SLURM_ID}={id} is not one of the array's ids ({min}-{max}:{step})"
                ));
            }
            if let Some(given) = shard_count {
                if given != count {
                    return Err(format!(
                        "--shard env: --shard-count {given} conflicts with {SLURM_COUNT}={count}"
                    ));
                }
            }
            Ok(((id - min) / step, count))
        }
    }
}

/// The process environment, for [`resolve_shard`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// Parses a duration: whole numbers with a unit, `s`, `m`, `h` or `d`, possibly several
/// (`90s`, `10m`, `1h30m`, `2d`); at least one second.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "--duration takes a time such as 90s, 10m, 1h30m or 2d (units s, m, h, d), got {text:?}"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let amount: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = amount
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A flag that SIGINT and SIGTERM set (installed once per process): a continuous sweep
/// stops taking new seeds, lets those in flight finish, and prints its summary. A second
/// signal ends the process at once (status 130).
pub fn stop_on_signal() -> Result<Arc<AtomicBool>, String> {
    static FLAG: OnceLock<Result<Arc<AtomicBool>, String>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = Arc::clone(&flag);
        ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("strata: stopping after the seeds in flight (signal again to abort)");
        })
        .map_err(|e| format!("cannot install the SIGINT/SIGTERM handler: {e}"))?;
        Ok(flag)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(
        shard: Option<&str>,
        count: Option<u64>,
        vars: &[(&str, &str)],
    ) -> Result<(u64, u64), String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve_shard(shard, count, &|name| vars.get(name).cloned())
    }

    fn slurm(
        id: &str,
        count: &str,
        min: &str,
        max: &str,
        step: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            (SLURM_ID, id.to_string()),
            (SLURM_COUNT, count.to_string()),
            (SLURM_MIN, min.to_string()),
            (SLURM_MAX, max.to_string()),
            (SLURM_STEP, step.to_string()),
        ]
    }

    fn with<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn the_shard_comes_from_the_flag_or_the_batch_system() {
        assert_eq!(resolve(None, None, &[(K8S_INDEX, "3")]), Ok((0, 1)));
        assert_eq!(resolve(Some("2/5"), None, &[(K8S_INDEX, "3")]), Ok((2, 5)));
        assert_eq!(
            resolve(Some("env"), Some(4), &[(K8S_INDEX, "3")]),
            Ok((3, 4))
        );
        // Slurm ids start at the array's min: `--array=3-6` is shards 0..4.
        assert_eq!(
            resolve(Some("env"), None, &with(&slurm("5", "4", "3", "6", "1"))),
            Ok((2, 4))
        );
        assert_eq!(
            resolve(Some("env"), Some(4), &with(&slurm("7", "4", "1", "7", "2"))),
            Ok((3, 4))
        );
    }

    #[test]
    fn bad_or_conflicting_values_are_refused_with_the_variable_named() {
        type Case<'a> = (
            Option<&'a str>,
            Option<u64>,
            Vec<(&'static str, String)>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (None, Some(4), vec![], "--shard-count goes with --shard env"),
            (
                Some("1/4"),
                Some(4),
                vec![],
                "--shard-count goes with --shard env",
            ),
            (Some("4/4"), None, vec![], "need 0 <= I < N"),
            (Some("x"), None, vec![], "--shard takes I/N"),
            (Some("env"), Some(4), vec![], "neither JOB_COMPLETION_INDEX"),
            (
                Some("env"),
                None,
                vec![(K8S_INDEX, "1".into())],
                "needs --shard-count",
            ),
            (
                Some("env"),
                Some(4),
                vec![(K8S_INDEX, "4".into())],
                "not below --shard-count 4",
            ),
            (
                Some("env"),
                Some(4),
                vec![(K8S_INDEX, "-1".into())],
                "JOB_COMPLETION_INDEX=\"-1\"",
            ),
            (
                Some("env"),
                Some(0),
                vec![(K8S_INDEX, "0".into())],
                "at least 1",
            ),
            (
                Some("env"),
                Some(4),
                vec![(K8S_INDEX, "1".into()), (SLURM_ID, "1".into())],
                "ambiguous",
            ),
            (
                Some("env"),
                None,
                vec![(SLURM_ID, "1".into())],
                "SLURM_ARRAY_TASK_COUNT is not",
            ),
            (
                Some("env"),
                None,
                slurm("3", "3", "0", "7", "1"),
                "not evenly spaced",
            ),
            (
                Some("env"),
                None,
                slurm("9", "4", "3", "6", "1"),
                "not one of the array's ids",
            ),
            (
                Some("env"),
                None,
                slurm("4", "4", "1", "7", "2"),
                "not one of the array's ids",
            ),
            (
                Some("env"),
                Some(8),
                slurm("3", "4", "3", "6", "1"),
                "conflicts with",
            ),
            (
                Some("env"),
                None,
                slurm("a", "4", "3", "6", "1"),
                "SLURM_ARRAY_TASK_ID=\"a\"",
            ),
            (
                Some("env"),
                None,
                slurm("3", "4", "3", "6", "0"),
                "must be at least 1",
            ),
        ];
        for (shard, count, vars, want) in cases {
            let got = resolve(shard, count, &with(&vars));
            match &got {
                Err(message) if message.contains(want) => {}
                _ => {
                    panic!("{shard:?} {count:?} {vars:?}: want an error with {want:?}, got {got:?}")
                }
            }
        }
    }

    #[test]
    fn durations_take_units_and_refuse_the_rest() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "10",
            "0s",
            "m",
            "3x",
            "1.5h",
            "-3s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
