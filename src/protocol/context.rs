//! The job message as data: the job's identity, and the `github.megascaler` context splice.
//!
//! Owns reading `contextData` (PipelineContextData, spec §5.3) for [`JobIdentity`], and
//! [`splice_megascaler_context`] (spec §6.4), which inserts one entry into the raw JSON text of
//! `contextData.github` and leaves every other byte of the message as it was: no key is
//! reordered, no number re-formatted. Pure; no IO.

use super::api::JobIdentity;
use super::rawjson::{self, Member};
use serde_json::Value;

/// What megascaler knows about the job that the message alone does not say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MegascalerContext {
    /// REST/webhook `workflow_job.id`.
    pub job_id: u64,
    /// `workflow_job.html_url`.
    pub job_url: String,
    /// `workflow_job.run_url` (the API URL of the run).
    pub run_url: String,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    /// Display name; when empty, the message's own `jobDisplayName` is used.
    pub job_display_name: String,
}

/// The job message could not be read or patched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("job message is not valid JSON: {0}")]
    NotJson(String),
    #[error("job message: `{0}` does not have the expected shape")]
    Shape(&'static str),
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Splices `github.megascaler` into the message (spec §6.4). An existing `megascaler` entry is
/// replaced. When `contextData` or `github` is missing, it is created. Only the inserted text is
/// new; the rest of the message is byte-for-byte the input.
pub fn splice_megascaler_context(
    message: &str,
    ctx: &MegascalerContext,
) -> Result<String, ContextError> {
    let doc: Value =
        serde_json::from_str(message).map_err(|e| ContextError::NotJson(e.to_string()))?;
    let root = rawjson::root(message).ok_or(ContextError::Shape("message"))?;
    let top = rawjson::members(message, root).ok_or(ContextError::Shape("message"))?;
    let entry = megascaler_entry(&doc, ctx);

    let Some(cd) = rawjson::find(&top, "contextData") else {
        let insert = format!(r#""contextData":{{"github":{{"t":2,"d":[{entry}]}}}}"#);
        return Ok(insert_member(message, root, &top, &insert));
    };
    let cd_members =
        rawjson::members(message, cd.value).ok_or(ContextError::Shape("contextData"))?;
    let Some(gh) = rawjson::find(&cd_members, "github") else {
        let insert = format!(r#""github":{{"t":2,"d":[{entry}]}}"#);
        return Ok(insert_member(message, cd.value, &cd_members, &insert));
    };
    let gh_members =
        rawjson::members(message, gh.value).ok_or(ContextError::Shape("contextData.github"))?;
    let Some(d) = rawjson::find(&gh_members, "d") else {
        let insert = format!(r#""d":[{entry}]"#);
        return Ok(insert_member(message, gh.value, &gh_members, &insert));
    };
    let elems =
        rawjson::elements(message, d.value).ok_or(ContextError::Shape("contextData.github.d"))?;
    for &(s, e) in &elems {
        let k = serde_json::from_str::<Value>(message.get(s..e).unwrap_or_default())
            .ok()
            .and_then(|v| v.get("k").and_then(Value::as_str).map(str::to_string));
        if k.is_some_and(|k| k.eq_ignore_ascii_case("megascaler")) {
            return Ok(format!("{}{entry}{}", &message[..s], &message[e..]));
        }
    }
    let close = d.value.1 - 1; // the `]`
    let sep = if elems.is_empty() { "" } else { "," };
    Ok(format!(
        "{}{sep}{entry}{}",
        &message[..close],
        &message[close..]
    ))
}

fn insert_member(text: &str, obj: (usize, usize), members: &[Member], member: &str) -> String {
    let close = obj.1 - 1; // the `}`
    let sep = if members.is_empty() { "" } else { "," };
    format!("{}{sep}{member}{}", &text[..close], &text[close..])
}

/// The new dictionary entry, written in AR's canonical encoding (bare strings and numbers,
/// `t` before `d`/`a`).
fn megascaler_entry(doc: &Value, ctx: &MegascalerContext) -> String {
    let mut d = Vec::new();
    let labels: Vec<String> = ctx.labels.iter().map(|l| json_str(l)).collect();
    if labels.is_empty() {
        d.push(r#"{"k":"labels","v":{"t":1}}"#.to_string());
    } else {
        d.push(format!(
            r#"{{"k":"labels","v":{{"t":1,"a":[{}]}}}}"#,
            labels.join(",")
        ));
    }
    d.push(format!(r#"{{"k":"jobid","v":{}}}"#, ctx.job_id));
    d.push(format!(
        r#"{{"k":"job_url","v":{}}}"#,
        json_str(&ctx.job_url)
    ));
    d.push(format!(
        r#"{{"k":"run_url","v":{}}}"#,
        json_str(&ctx.run_url)
    ));
    let display = if ctx.job_display_name.is_empty() {
        get_ci(doc, "jobDisplayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
    } else {
        ctx.job_display_name.as_str()
    };
    if !display.is_empty() {
        d.push(format!(
            r#"{{"k":"jobDisplayName","v":{}}}"#,
            json_str(display)
        ));
    }
    let vars: Vec<String> = get_ci(doc, "variables")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| {
                    !get_ci(v, "isSecret")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
                .map(|(k, v)| {
                    let value = match get_ci(v, "value") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    };
                    format!(r#"{{"k":{},"v":{}}}"#, json_str(k), json_str(&value))
                })
                .collect()
        })
        .unwrap_or_default();
    if !vars.is_empty() {
        d.push(format!(
            r#"{{"k":"variables","v":{{"t":2,"d":[{}]}}}}"#,
            vars.join(",")
        ));
    }
    format!(
        r#"{{"k":"megascaler","v":{{"t":2,"d":[{}]}}}}"#,
        d.join(",")
    )
}

/// A JSON object member by key, ignoring ASCII case.
pub fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A PipelineContextData dictionary entry (type 2 case-insensitive, type 5 case-sensitive).
pub fn ctx_lookup<'a>(dict: &'a Value, key: &str) -> Option<&'a Value> {
    let t = get_ci(dict, "t").and_then(Value::as_u64)?;
    let d = get_ci(dict, "d")?.as_array()?;
    d.iter().find_map(|e| {
        let k = get_ci(e, "k")?.as_str()?;
        let hit = if t == 5 {
            k == key
        } else {
            k.eq_ignore_ascii_case(key)
        };
        hit.then(|| get_ci(e, "v")).flatten()
    })
}

/// A context value as text (bare string, `{t:0,s}`, or a number).
pub fn ctx_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(_) => match get_ci(v, "t").and_then(Value::as_u64) {
            Some(4) => get_ci(v, "n").map(|n| n.to_string()),
            _ => get_ci(v, "s").and_then(Value::as_str).map(str::to_string),
        },
        _ => None,
    }
}

/// A context value as an unsigned integer (bare number, `{t:4,n}`, or digits in a string).
pub fn ctx_u64(v: &Value) -> Option<u64> {
    let num = |n: &Value| {
        n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        })
    };
    match v {
        Value::Number(_) => num(v),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(_) => match get_ci(v, "t").and_then(Value::as_u64) {
            Some(4) => get_ci(v, "n").and_then(num),
            _ => get_ci(v, "s").and_then(Value::as_str)?.trim().parse().ok(),
        },
        _ => None,
    }
}

/// What the message says about which job it is (spec §5.2, §8.6).
pub fn job_identity(doc: &Value) -> JobIdentity {
    let cd = get_ci(doc, "contextData");
    let github = cd.and_then(|c| get_ci(c, "github"));
    let job = cd.and_then(|c| get_ci(c, "job"));
    let gh = |k: &str| github.and_then(|g| ctx_lookup(g, k));
    JobIdentity {
        check_run_id: job
            .and_then(|j| ctx_lookup(j, "check_run_id"))
            .and_then(ctx_u64),
        run_id: gh("run_id").and_then(ctx_u64),
        run_attempt: gh("run_attempt").and_then(ctx_u64),
        repository: gh("repository").and_then(ctx_str),
        job_display_name: get_ci(doc, "jobDisplayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

/// Parses a job message's text and reads its identity.
pub fn parse_job_identity(message: &str) -> Result<JobIdentity, ContextError> {
    let doc: Value =
        serde_json::from_str(message).map_err(|e| ContextError::NotJson(e.to_string()))?;
    Ok(job_identity(&doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = r#"{"messageType":"PipelineAgentJobRequest","jobId":"j-1","jobDisplayName":"build (x)",
 "variables":{"system.github.token":{"value":"ghs_SECRET","isSecret":true},"FOO":{"value":"bar"},"N":{"value":"1","isSecret":false}},
 "contextData":{"github":{"t":2,"d":[{"k":"run_id","v":"987654321"},{"k":"Run_Attempt","v":{"t":0,"s":"2"}},{"k":"repository","v":"o/r"},{"k":"n","v":1.50}]},
   "job":{"t":2,"d":[{"k":"check_run_id","v":123456789}]}},
 "steps":[{"z":1,"a":2}], "lockedUntil":"0001-01-01T00:00:00"}"#;

    fn ctx() -> MegascalerContext {
        MegascalerContext {
            job_id: 123456789,
            job_url: "https://github.com/o/r/actions/runs/987654321/job/123456789".into(),
            run_url: "https://api.github.com/repos/o/r/actions/runs/987654321".into(),
            labels: vec!["linux-big".into(), "x\"y".into()],
            job_display_name: String::new(),
        }
    }

    #[test]
    fn identity_from_the_message() {
        let id = parse_job_identity(MSG).unwrap();
        assert_eq!(id.check_run_id, Some(123456789));
        assert_eq!(id.run_id, Some(987654321));
        assert_eq!(
            id.run_attempt,
            Some(2),
            "keys are case-insensitive, {{t:0,s}} is read"
        );
        assert_eq!(id.repository.as_deref(), Some("o/r"));
        assert_eq!(id.job_display_name, "build (x)");
        let bare = parse_job_identity(r#"{"jobDisplayName":"a"}"#).unwrap();
        assert_eq!(bare.check_run_id, None);
        assert!(parse_job_identity("{").is_err());
    }

    #[test]
    fn splice_keeps_every_other_byte() {
        let out = splice_megascaler_context(MSG, &ctx()).unwrap();
        // Removing the inserted text gives back the input exactly.
        let doc: Value = serde_json::from_str(&out).unwrap();
        let gh = &doc["contextData"]["github"];
        let ms = ctx_lookup(gh, "megascaler").unwrap();
        let inserted = format!(
            ",{}",
            megascaler_entry(&serde_json::from_str(MSG).unwrap(), &ctx())
        );
        assert_eq!(out.replacen(&inserted, "", 1), MSG);
        assert_eq!(ctx_u64(ctx_lookup(ms, "jobid").unwrap()), Some(123456789));
        assert_eq!(ctx_lookup(ms, "JOBDISPLAYNAME").unwrap(), "build (x)");
        let labels = ctx_lookup(ms, "labels").unwrap();
        assert_eq!(labels["a"][1], "x\"y");
        let vars = ctx_lookup(ms, "variables").unwrap();
        assert_eq!(ctx_lookup(vars, "FOO").unwrap(), "bar");
        assert!(
            ctx_lookup(vars, "system.github.token").is_none(),
            "secrets are excluded"
        );
        assert!(!out.contains("megascaler\",\"v\":{\"t\":2,\"d\":[]"));
        // The original number formatting survives (1.50 is not re-written as 1.5).
        assert!(out.contains(r#""v":1.50"#));
    }

    #[test]
    fn splice_twice_replaces() {
        let once = splice_megascaler_context(MSG, &ctx()).unwrap();
        let mut c2 = ctx();
        c2.job_id = 7;
        let twice = splice_megascaler_context(&once, &c2).unwrap();
        let doc: Value = serde_json::from_str(&twice).unwrap();
        let d = doc["contextData"]["github"]["d"].as_array().unwrap();
        assert_eq!(d.iter().filter(|e| e["k"] == "megascaler").count(), 1);
        assert_eq!(
            ctx_u64(
                ctx_lookup(
                    ctx_lookup(&doc["contextData"]["github"], "megascaler").unwrap(),
                    "jobid"
                )
                .unwrap()
            ),
            Some(7)
        );
    }

    #[test]
    fn splice_creates_missing_containers() {
        for msg in [
            r#"{"jobDisplayName":"a"}"#,
            r#"{"contextData":{}}"#,
            r#"{"contextData":{"github":{"t":2}}}"#,
            r#"{"contextData":{"github":{"t":2,"d":[]}}}"#,
        ] {
            let out = splice_megascaler_context(msg, &ctx()).unwrap();
            let doc: Value = serde_json::from_str(&out).unwrap();
            let ms = ctx_lookup(&doc["contextData"]["github"], "megascaler").unwrap();
            assert_eq!(
                ctx_lookup(ms, "jobDisplayName").map(|v| v == "a"),
                msg.contains("jobDisplayName").then_some(true)
            );
        }
        assert!(matches!(
            splice_megascaler_context(r#"{"contextData":[]}"#, &ctx()),
            Err(ContextError::Shape(_))
        ));
        assert!(splice_megascaler_context("[1]", &ctx()).is_err());
        assert!(splice_megascaler_context("nope", &ctx()).is_err());
    }
}
