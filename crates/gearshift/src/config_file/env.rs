//! `GEARSHIFT_*` environment variables over a config file.
//!
//! A variable names a key, upper case, with `__` between table levels:
//!
//! | variable                                | key                           |
//! |-----------------------------------------|-------------------------------|
//! | `GEARSHIFT_CORES=8`                     | `cores`                       |
//! | `GEARSHIFT_API_TIMEOUT=5s`              | `api_timeout`                 |
//! | `GEARSHIFT_PRESET=night`                | `preset`                      |
//! | `GEARSHIFT_RETRY__MAX_ATTEMPTS=5`       | `retry.max_attempts`          |
//! | `GEARSHIFT_APIS__SEARCH__RATE_LIMIT=50` | `apis.search.rate_limit`      |
//! | `GEARSHIFT_STAGES__FETCH__AGENTS={ per_core = 4 }` | `stages.fetch.agents` |
//!
//! The value is read as a TOML value (`8`, `2.5`, `true`, `{ per_core = 4 }`)
//! and, when it is not one, as a string (`5s`, `night`). A table name
//! matches case-insensitively, with `_` for `-` (`GEARSHIFT_STAGES__MY_STAGE`
//! sets `[stages.my-stage]` if the file has it). The variables are merged
//! into the file's TOML before it is read, so they go through the same
//! checks, and an error names the variable.

use toml::{Table, Value};

use super::error::Problem;

/// The prefix of the variables read.
pub const ENV_PREFIX: &str = "GEARSHIFT_";

/// A variable merged into the file, and the key it set.
#[derive(Debug, Clone)]
pub(super) struct EnvKey {
    pub(super) var: String,
    pub(super) key: String,
}

/// Sets every `GEARSHIFT_*` variable of `vars` in `table`; returns which
/// variable set which key. Variables apply in name order.
pub(super) fn merge(
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvKey>, (String, Problem)> {
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut set = Vec::with_capacity(vars.len());
    for (var, raw) in vars {
        let key = set_one(table, &var, &raw).map_err(|p| (var.clone(), p))?;
        set.push(EnvKey { var, key });
    }
    Ok(set)
}

/// Sets one variable's value at its key; returns the key as written in
/// the table (dotted).
fn set_one(table: &mut Table, var: &str, raw: &str) -> Result<String, Problem> {
    let segments: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if segments.iter().any(String::is_empty) {
        return Err(Problem::bad_value(
            "",
            format!("{var} names no key: write GEARSHIFT_KEY or GEARSHIFT_TABLE__KEY"),
        ));
    }
    let value = raw
        .parse::<Value>()
        .unwrap_or_else(|_| Value::String(raw.to_owned()));
    let mut path: Vec<String> = Vec::with_capacity(segments.len());
    let mut at = table;
    let Some((last, tables)) = segments.split_last() else {
        return Err(Problem::bad_value("", format!("{var} names no key")));
    };
    for segment in tables {
        let name = existing_key(at, segment).unwrap_or_else(|| segment.clone());
        path.push(name.clone());
        let entry = at.entry(name).or_insert_with(|| Value::Table(Table::new()));
        at = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(Problem::bad_value(
                    path.join("."),
                    "is a value, not a table: the variable names a key inside it",
                ));
            }
        };
    }
    let name = existing_key(at, last).unwrap_or_else(|| last.clone());
    path.push(name.clone());
    at.insert(name, value);
    Ok(path.join("."))
}

/// The key of `table` that `segment` (lower case, from a variable) names.
fn existing_key(table: &Table, segment: &str) -> Option<String> {
    table
        .keys()
        .find(|k| k.to_ascii_lowercase().replace('-', "_") == segment)
        .cloned()
}
