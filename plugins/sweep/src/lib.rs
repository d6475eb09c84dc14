//! Job arrays and sweeps as gantry writes them, for the host (`gantry submit --array/--sweep`,
//! the API) and for parser plugins (command files) alike, so both read the same syntax.
//!
//! - indices in Slurm's syntax: `0..99` or `0-99`, `1,5,7`, `0..20:2` (every second), joined by
//!   commas, with `%N` at the end for "at most N at once";
//! - a sweep parameter's values: `1..3` (integers), else a comma list;
//! - in a command, `{}` is the element's index and `{NAME}` the value of parameter NAME;
//! - a duration: a whole number and a unit, `90s`, `30m`, `2h`, `7d`
//!   (`gantry submit --max-wait`, `#gantry burst max-wait=…`).

/// The indices of `spec` in order, and its `%N` limit if it has one; at most `max` of them.
pub fn parse_indices(spec: &str, max: usize) -> Result<(Vec<u32>, Option<u32>), String> {
    let (list, limit) = match spec.trim().split_once('%') {
        Some((list, limit)) => (list, Some(limit.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("'%{limit}' is not %N with N at least 1"))?)),
        None => (spec.trim(), None),
    };
    let mut indices = Vec::new();
    for part in list.split(',').map(str::trim) {
        let number = |text: &str| text.trim().parse::<u32>().map_err(|_| format!("'{part}' is not an index, a range A..B or A..B:STEP"));
        let (range, step) = match part.split_once(':') {
            Some((range, step)) => (range, number(step)?),
            None => (part, 1),
        };
        let bounds = range.split_once("..").or_else(|| range.split_once('-'));
        let (from, to) = match bounds {
            Some((from, to)) => (number(from)?, number(to)?),
            None if step == 1 => (number(range)?, number(range)?),
            None => return Err(format!("'{part}': a step needs a range")),
        };
        if from > to || step == 0 {
            return Err(format!("'{part}' is empty"));
        }
        let count = (to - from) / step + 1;
        if indices.len() + count as usize > max {
            return Err(format!("more than {max} elements"));
        }
        indices.extend((from..=to).step_by(step as usize));
    }
    Ok((indices, limit))
}

/// A parameter's values: `1..3` as integers (at most `max`), else the comma-separated list.
pub fn parse_values(spec: &str, max: usize) -> Vec<String> {
    let range = spec.split_once("..").and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)));
    match range {
        Some((from, to)) if from <= to && to - from < max as i64 => (from..=to).map(|v| v.to_string()).collect(),
        _ => spec.split(',').map(|v| v.trim().to_string()).collect(),
    }
}

/// A name `{NAME}` may stand for: letters, digits and `_`, at most 64.
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every combination of the parameters' values, the first parameter varying slowest; `None` if
/// there would be more than `max`.
pub fn grid(params: &[(String, Vec<String>)], max: usize) -> Option<Vec<Vec<(String, String)>>> {
    let size = params.iter().try_fold(1usize, |n, (_, values)| n.checked_mul(values.len()).filter(|n| *n <= max))?;
    let combinations = (0..size)
        .map(|n| {
            let mut rest = n;
            let mut combination = vec![(String::new(), String::new()); params.len()];
            for (slot, (name, values)) in combination.iter_mut().zip(params).rev() {
                *slot = (name.clone(), values[rest % values.len()].clone());
                rest /= values.len();
            }
            combination
        })
        .collect();
    Some(combinations)
}

/// `command` with `{}` replaced by `index` and each `{NAME}` by its value.
pub fn fill(command: &str, index: u32, params: &[(String, String)]) -> String {
    let mut command = command.replace("{}", &index.to_string());
    for (name, value) in params {
        command = command.replace(&format!("{{{name}}}"), value);
    }
    command
}

/// The seconds of a duration such as `30m`.
pub fn seconds(text: &str) -> Result<u64, String> {
    let unit = text.chars().last().ok_or("empty")?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("'{text}': give a number and a unit, s, m, h or d (e.g. 7d)")),
    };
    let count: u64 = text[..text.len() - 1].parse().map_err(|_| format!("'{text}': give a whole number before the unit (e.g. 7d)"))?;
    count.checked_mul(scale).ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("30m"), Ok(1800));
        assert_eq!(seconds("7d"), Ok(7 * 86_400));
        assert!(seconds("7").is_err());
        assert!(seconds("s").is_err());
        assert!(seconds("").is_err());
        assert!(seconds("99999999999999999999d").is_err());
    }

    #[test]
    fn slurm_index_syntax_with_ranges_steps_lists_and_a_limit() {
        assert_eq!(parse_indices("0..3", 100), Ok((vec![0, 1, 2, 3], None)));
        assert_eq!(parse_indices("0-3%2", 100), Ok((vec![0, 1, 2, 3], Some(2))));
        assert_eq!(parse_indices("1,5,7", 100), Ok((vec![1, 5, 7], None)));
        assert_eq!(parse_indices("0..10:5,20", 100), Ok((vec![0, 5, 10, 20], None)));
        for wrong in ["", "3..1", "a", "0..3%0", "0..3%x", "5:2", "0..100"] {
            assert!(parse_indices(wrong, 100).is_err(), "{wrong}");
        }
    }

    #[test]
    fn values_grids_and_placeholders() {
        assert_eq!(parse_values("1..3", 100), ["1", "2", "3"]);
        assert_eq!(parse_values("1e-3, 3e-4", 100), ["1e-3", "3e-4"]);
        let params = [("lr".to_string(), parse_values("a,b", 100)), ("seed".to_string(), parse_values("1..3", 100))];
        let combos = grid(&params, 100).expect("small");
        assert_eq!(combos.len(), 6);
        assert_eq!(combos[4], [("lr".to_string(), "b".to_string()), ("seed".to_string(), "2".to_string())]);
        assert!(grid(&params, 5).is_none(), "over the limit");
        assert_eq!(fill("run --lr {lr} --seed {seed} # {} ${HOME}", 4, &combos[4]), "run --lr b --seed 2 # 4 ${HOME}");
        assert!(is_param_name("lr_2") && !is_param_name("a b") && !is_param_name(""));
    }
}
