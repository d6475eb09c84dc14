//! Job arrays and sweeps: one submission that becomes one job per element, as Slurm's `--array`
//! does, or one per combination of hyper-parameter values (a grid).
//!
//! In the command of the template, `{}` becomes the element's index and `{NAME}` the value of
//! sweep parameter NAME; each element also has them as labels (`array_index`, and each
//! parameter by its name) and in its environment (`GANTRY_ARRAY_INDEX`, `GANTRY_PARAM_NAME` in
//! capitals). An array is known by the id of its first element; its elements share a queue of
//! their own, whose parallelism is the array's `max_running` (Slurm's `%N`).

use super::job::{Dependency, JobId, JobSpec};
use super::submission::{limits, Batch, FieldError};

/// What an array submission asks for: `indices` or a `sweep`.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArraySpec {
    /// Slurm's index syntax (`0..99` or `0-99`, `1,5,7`, `0..20:2` for every second, with
    /// `%4` to run at most four at once), or a list of indices.
    #[serde(default)]
    pub indices: Option<Indices>,
    /// A grid: one element per combination of these parameters' values, the first parameter
    /// varying slowest.
    #[serde(default)]
    pub sweep: Vec<Param>,
    /// At most this many elements run at once.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_running: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Indices {
    Spec(String),
    List(Vec<u32>),
}

/// One parameter of a sweep and its values.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Letters, digits and `_`; `{NAME}` in the command is replaced by each value.
    pub name: String,
    pub values: Vec<String>,
}

/// Where a job stands in its array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ArrayPlace {
    /// The array's id: its first element's.
    pub id: JobId,
    pub index: u32,
}

/// One element: its index and its parameters' values.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    pub index: u32,
    pub params: Vec<(String, String)>,
}

/// Slurm's index syntax (see the `sweep` crate): the indices in order, and the `%N` limit.
pub fn parse_indices(spec: &str) -> Result<(Vec<u32>, Option<u32>), String> {
    sweep::parse_indices(spec, limits::JOBS_PER_BATCH)
}

/// A sweep parameter's values as the CLI takes them: `1..3` (integers), else a comma list.
pub fn parse_values(spec: &str) -> Vec<String> {
    sweep::parse_values(spec, limits::JOBS_PER_BATCH)
}

impl ArraySpec {
    /// Its elements, in order; an error names the field at fault (`array.…`).
    pub fn elements(&self) -> Result<Vec<Element>, FieldError> {
        let wrong = |field: &str, message: String| FieldError::new(format!("array.{field}"), message);
        match (&self.indices, self.sweep.is_empty()) {
            (Some(_), false) => Err(wrong("sweep", "give indices or a sweep, not both".into())),
            (None, true) => Err(wrong("indices", "an array needs indices or a sweep".into())),
            (Some(indices), true) => {
                let list = match indices {
                    Indices::Spec(spec) => parse_indices(spec).map_err(|e| wrong("indices", e))?.0,
                    Indices::List(list) => list.clone(),
                };
                if list.is_empty() || list.len() > limits::JOBS_PER_BATCH {
                    return Err(wrong("indices", format!("{} elements; 1 to {} per array", list.len(), limits::JOBS_PER_BATCH)));
                }
                Ok(list.into_iter().map(|index| Element { index, params: Vec::new() }).collect())
            }
            (None, false) => {
                for (i, param) in self.sweep.iter().enumerate() {
                    if !sweep::is_param_name(&param.name) {
                        return Err(wrong(&format!("sweep[{i}].name"), format!("'{}' is not a parameter name (letters, digits, _; at most 64)", param.name)));
                    }
                    if self.sweep[..i].iter().any(|p| p.name == param.name) {
                        return Err(wrong(&format!("sweep[{i}].name"), format!("'{}' is swept twice", param.name)));
                    }
                    if param.values.is_empty() {
                        return Err(wrong(&format!("sweep[{i}].values"), "no values".into()));
                    }
                    if let Some(value) = param.values.iter().find(|v| v.len() > limits::LABEL_VALUE_BYTES || v.contains('\0')) {
                        return Err(wrong(&format!("sweep[{i}].values"), format!("'{}…' is longer than {} bytes or holds a NUL", value.chars().take(20).collect::<String>(), limits::LABEL_VALUE_BYTES)));
                    }
                }
                let params: Vec<(String, Vec<String>)> = self.sweep.iter().map(|p| (p.name.clone(), p.values.clone())).collect();
                let combinations = sweep::grid(&params, limits::JOBS_PER_BATCH).ok_or_else(|| wrong("sweep", format!("more than {} combinations per array", limits::JOBS_PER_BATCH)))?;
                Ok(combinations.into_iter().enumerate().map(|(n, params)| Element { index: u32::try_from(n).unwrap_or(u32::MAX), params }).collect())
            }
        }
    }
}

/// The job of `element` made from `template`: its placeholders filled, its labels and
/// environment set.
pub fn expand(template: &JobSpec, element: &Element) -> JobSpec {
    let mut spec = template.clone();
    spec.commands = template.commands.iter().map(|command| sweep::fill(command, element.index, &element.params)).collect();
    spec.labels.insert("array_index".into(), element.index.to_string());
    spec.env.insert("GANTRY_ARRAY_INDEX".into(), element.index.to_string());
    for (name, value) in &element.params {
        spec.labels.insert(name.clone(), value.clone());
        spec.env.insert(format!("GANTRY_PARAM_{}", name.to_ascii_uppercase()), value.clone());
    }
    spec
}

/// An array: one job per element of `array`, made from `template`.
pub fn batch(template: JobSpec, array: &ArraySpec) -> Result<Batch, FieldError> {
    let elements = array.elements()?;
    // Slurm's `%N` in the indices, else `max_running`.
    let limit = match &array.indices {
        Some(Indices::Spec(spec)) => parse_indices(spec).ok().and_then(|(_, limit)| limit),
        _ => None,
    }
    .or(array.max_running);
    check_template(&template, limit)?;
    let specs = elements.iter().map(|element| expand(&template, element)).collect();
    let batch = Batch::new(specs).map_err(|e| FieldError::new(e.field.replacen("jobs[", "array element [", 1), e.message))?;
    let indices: Vec<u32> = elements.iter().map(|e| e.index).collect();
    Ok(batch.into_array(&indices, limit))
}

/// What a template may not have: what names other members of a batch (an array's elements are
/// alike, and name none).
fn check_template(template: &JobSpec, limit: Option<u32>) -> Result<(), FieldError> {
    if template.key.is_some() {
        return Err(FieldError::new("key", "an array's elements have no keys"));
    }
    if template.after.iter().any(|d| matches!(d, Dependency::Key(_))) {
        return Err(FieldError::new("after", "an array's elements wait only for jobs by id"));
    }
    if template.queue.is_some() && limit.is_some() {
        return Err(FieldError::new("array.max_running", "an array in a queue runs as that queue's parallelism allows: leave out the queue, or set its parallelism"));
    }
    if limit == Some(0) {
        return Err(FieldError::new("array.max_running", "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_the_cross_product_in_order_and_each_element_gets_its_values_as_labels_and_environment() {
        let spec = ArraySpec {
            sweep: vec![Param { name: "lr".into(), values: vec!["1e-3".into(), "3e-4".into()] }, Param { name: "seed".into(), values: parse_values("1..3") }],
            ..ArraySpec::default()
        };
        let elements = spec.elements().expect("elements");
        let grid: Vec<String> = elements.iter().map(|e| e.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(grid, ["lr=1e-3 seed=1", "lr=1e-3 seed=2", "lr=1e-3 seed=3", "lr=3e-4 seed=1", "lr=3e-4 seed=2", "lr=3e-4 seed=3"]);
        let template = JobSpec { commands: vec!["python train.py --lr {lr} --seed {seed} # {} ${HOME}".into()], ..JobSpec::default() };
        let job = expand(&template, &elements[4]);
        assert_eq!(job.commands, ["python train.py --lr 3e-4 --seed 2 # 4 ${HOME}"]);
        assert_eq!((job.labels.get("lr").map(String::as_str), job.labels.get("array_index").map(String::as_str)), (Some("3e-4"), Some("4")));
        assert_eq!((job.env.get("GANTRY_PARAM_SEED").map(String::as_str), job.env.get("GANTRY_ARRAY_INDEX").map(String::as_str)), (Some("2"), Some("4")));
    }

    #[test]
    fn an_array_in_a_queue_takes_no_limit_of_its_own() {
        let template = JobSpec { commands: vec!["true".into()], queue: Some("q".into()), ..JobSpec::default() };
        for spec in [ArraySpec { indices: Some(Indices::Spec("0..3%2".into())), ..ArraySpec::default() }, ArraySpec { indices: Some(Indices::List(vec![1, 2])), max_running: Some(1), ..ArraySpec::default() }] {
            assert_eq!(batch(template.clone(), &spec).expect_err("refused").field, "array.max_running", "{spec:?}");
        }
        let fine = batch(template, &ArraySpec { indices: Some(Indices::Spec("0..3".into())), ..ArraySpec::default() }).expect("in its queue");
        assert_eq!((fine.len(), fine.array_batch().map(|a| a.max_running)), (4, Some(None)));
    }

    #[test]
    fn a_wrong_array_names_its_field() {
        let cases = [
            (ArraySpec::default(), "array.indices"),
            (ArraySpec { indices: Some(Indices::Spec("0..3".into())), sweep: vec![Param { name: "a".into(), values: vec!["1".into()] }], max_running: None }, "array.sweep"),
            (ArraySpec { sweep: vec![Param { name: "a b".into(), values: vec!["1".into()] }], ..ArraySpec::default() }, "array.sweep[0].name"),
            (ArraySpec { sweep: vec![Param { name: "a".into(), values: vec![] }], ..ArraySpec::default() }, "array.sweep[0].values"),
            (ArraySpec { sweep: (0..4).map(|i| Param { name: format!("p{i}"), values: (0..20).map(|v| v.to_string()).collect() }).collect(), ..ArraySpec::default() }, "array.sweep"),
        ];
        for (spec, field) in cases {
            assert_eq!(spec.elements().expect_err("refused").field, field, "{spec:?}");
        }
    }
}
