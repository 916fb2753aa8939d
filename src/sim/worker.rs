//! The simulator's worker (`megascaler sim-worker`): a stand-in for a real worker process that
//! speaks the real worker protocol.
//!
//! Owns reading stdin frames (spec §6.1), following the [`WorkerScript`] the job message
//! carries (step-like log lines over time, conclusion, crash, ignoring cancellation), checking
//! that it was started for the job's labels, and reporting completion itself with the job
//! token (v1 plan ≥ 8: plan event `JobCompleted`; run service: `completejob`). It must never
//! print the job token or any secret variable.

use super::{SCRIPT_VARIABLE, WorkerScript};
use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// Frame types of §6.1.
const NEW_JOB_REQUEST: u32 = 1;

/// The most a frame body may be (Runner.Worker's limit).
const MAX_FRAME: u32 = 50_000_000;

/// Reads a job from stdin frames and reports it; returns the exit code.
pub async fn run() -> anyhow::Result<u8> {
    run_with_labels(None).await
}

/// [`run`], knowing the labels the worker was started for (`--labels a,b`).
pub async fn run_with_labels(labels: Option<Vec<String>>) -> anyhow::Result<u8> {
    let (tx, mut frames) = mpsc::unbounded_channel();
    // A plain thread, not tokio's stdin: a blocking read on tokio's pool would keep the
    // runtime (and so the process) alive after the job ends while the runner keeps stdin open.
    std::thread::spawn(move || {
        let reader = std::io::stdin().lock();
        read_frames_blocking(reader, tx);
    });
    let first = tokio::time::timeout(Duration::from_secs(30), frames.recv())
        .await
        .map_err(|_| anyhow!("no job frame within 30 s"))?
        .ok_or_else(|| anyhow!("stdin closed before a job frame"))?;
    if first.0 != NEW_JOB_REQUEST {
        anyhow::bail!(
            "first frame has type {}, expected 1 (NewJobRequest)",
            first.0
        );
    }
    let job: Value = serde_json::from_slice(&first.1).context("job message is not JSON")?;
    let job = JobFacts::from_message(&job)?;
    let script = job.script.clone();
    if script.hang_on_cancel {
        ignore_signals()?;
    }
    println!(
        "sim-worker: job {:?} (run {}, {}) started for labels [{}]",
        job.display_name,
        job.run_id,
        job.repository,
        labels.as_deref().unwrap_or_default().join(", ")
    );
    if let Err(reason) = check_identity(labels.as_deref(), &job) {
        println!("sim-worker: wrong worker: {reason}");
        return report(&job, "failed").await;
    }
    // Says what the check covered, so a test can tell a checked splice from an absent one.
    println!(
        "sim-worker: identity checked: true job {} [{}]; megascaler's splice: job {} [{}]",
        job.script
            .true_job_id
            .map_or("unknown".to_string(), |i| i.to_string()),
        job.script
            .true_labels
            .as_deref()
            .unwrap_or_default()
            .join(", "),
        job.spliced_job_id
            .map_or("absent".to_string(), |i| i.to_string()),
        job.spliced_labels.as_deref().unwrap_or_default().join(", "),
    );
    let mut result = if script.conclusion.eq_ignore_ascii_case("failure") {
        "failed"
    } else {
        "succeeded"
    };
    'steps: for step in 1..=script.steps {
        println!("##[group]Run step {step} of {}", script.steps);
        let sleep = tokio::time::sleep(Duration::from_millis(script.step_millis));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                frame = frames.recv() => match frame {
                    Some((kind, _)) if kind != NEW_JOB_REQUEST => {
                        if script.hang_on_cancel {
                            println!("sim-worker: cancel request (type {kind}) ignored");
                        } else {
                            println!("sim-worker: cancel request (type {kind}); stopping");
                            result = "canceled";
                            break 'steps;
                        }
                    }
                    Some(_) => println!("sim-worker: ignoring a second job frame"),
                    // stdin closed: keep running the job (the runner may close it early).
                    None => { sleep.as_mut().await; break; }
                },
            }
        }
        println!("step {step}: ok");
        println!("##[endgroup]");
    }
    if script.crash {
        eprintln!("sim-worker: crashing as the script asks, without reporting");
        return Ok(3);
    }
    report(&job, result).await
}

/// Reads §6.1 frames until EOF or a malformed frame (blocking).
fn read_frames_blocking(mut input: impl std::io::Read, tx: mpsc::UnboundedSender<(u32, Vec<u8>)>) {
    let mut word = [0u8; 4];
    loop {
        if input.read_exact(&mut word).is_err() {
            return;
        }
        let kind = u32::from_be_bytes(word);
        if input.read_exact(&mut word).is_err() {
            return;
        }
        let len = u32::from_be_bytes(word);
        if len > MAX_FRAME {
            eprintln!("sim-worker: frame of {len} bytes refused");
            return;
        }
        let mut body = vec![0u8; len as usize];
        if input.read_exact(&mut body).is_err() || tx.send((kind, body)).is_err() {
            return;
        }
    }
}

/// Replaces the default action of SIGINT and SIGTERM with a log line. tokio never unregisters
/// a handler once installed, so this holds for the rest of the process.
fn ignore_signals() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut s = signal(kind)?;
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                println!("sim-worker: signal ignored");
            }
        });
    }
    Ok(())
}

/// Whether this worker may run the job: the labels it was started for (`--labels`) must be the
/// job's true labels (written by the simulator into the script), and megascaler's spliced
/// `labels` / `jobid`, when present, must agree with the truth. Pure.
fn check_identity(started: Option<&[String]>, job: &JobFacts) -> Result<(), String> {
    let truth = job.script.true_labels.as_deref();
    if let Some(started) = started {
        // No silent skip: a worker started for labels must be able to prove them.
        let Some(truth) = truth else {
            return Err(format!(
                "started for labels [{}] but the job message carries no true labels to check them against",
                started.join(", ")
            ));
        };
        if !same_labels(started, truth) {
            return Err(format!(
                "started for labels [{}] but the job needs [{}]",
                started.join(", "),
                truth.join(", ")
            ));
        }
    }
    if let (Some(spliced), Some(truth)) = (&job.spliced_labels, truth)
        && !same_labels(spliced, truth)
    {
        return Err(format!(
            "megascaler spliced labels [{}] but the job needs [{}]",
            spliced.join(", "),
            truth.join(", ")
        ));
    }
    if let (Some(spliced), Some(truth)) = (job.spliced_job_id, job.script.true_job_id)
        && spliced != truth
    {
        return Err(format!(
            "megascaler spliced job id {spliced} but this is job {truth}"
        ));
    }
    Ok(())
}

fn same_labels(a: &[String], b: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    norm(a) == norm(b)
}

/// What the worker needs from the job message.
#[derive(Debug, Clone)]
struct JobFacts {
    message_type: String,
    plan: Value,
    plan_version: u64,
    job_id: String,
    request_id: Value,
    display_name: String,
    vss_url: String,
    /// The job token: a `Secret`, so no Debug or log line can show it.
    token: crate::secret::Secret,
    script: WorkerScript,
    run_id: String,
    repository: String,
    /// `github.megascaler.labels` as megascaler spliced it (§6.4), if it did.
    spliced_labels: Option<Vec<String>>,
    /// `github.megascaler.jobid` as megascaler spliced it, if it did.
    spliced_job_id: Option<u64>,
}

/// A key of a §5.3 type-2 dictionary (case-insensitive), or of a plain object.
fn dict_get<'a>(dict: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(entries) = dict.get("d").and_then(|d| d.as_array()) {
        return entries
            .iter()
            .find(|e| {
                e.get("k")
                    .and_then(|k| k.as_str())
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .and_then(|e| e.get("v"));
    }
    dict.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// A §5.3 string: bare or `{ "t": 0, "s": ... }`.
fn context_string(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_string)
        .or_else(|| v.get("s")?.as_str().map(str::to_string))
}

/// A §5.3 number: bare, `{ "t": 3, "n": ... }`, or a decimal string.
fn context_number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .or_else(|| context_number(v.get("n")?))
        .or_else(|| context_string(v)?.trim().parse().ok())
}

impl JobFacts {
    fn from_message(m: &Value) -> anyhow::Result<JobFacts> {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let endpoint = m["resources"]["endpoints"]
            .as_array()
            .and_then(|a| {
                a.iter().find(|e| {
                    e["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case("SystemVssConnection"))
                })
            })
            .ok_or_else(|| anyhow!("job message has no SystemVssConnection endpoint"))?;
        let script = m["variables"][SCRIPT_VARIABLE]["value"]
            .as_str()
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let github = &m["contextData"]["github"];
        let megascaler = dict_get(github, "megascaler");
        let spliced_job_id = megascaler
            .and_then(|ms| dict_get(ms, "jobid"))
            .and_then(context_number);
        let spliced_labels = megascaler.and_then(|ms| dict_get(ms, "labels")).map(|l| {
            let items = l
                .get("a")
                .and_then(|a| a.as_array())
                .cloned()
                .or_else(|| l.as_array().cloned());
            items
                .unwrap_or_default()
                .iter()
                .filter_map(context_string)
                .collect()
        });
        Ok(JobFacts {
            message_type: s(&m["messageType"]),
            plan_version: m["plan"]["version"].as_u64().unwrap_or(0),
            plan: m["plan"].clone(),
            job_id: s(&m["jobId"]),
            request_id: m["requestId"].clone(),
            display_name: s(&m["jobDisplayName"]),
            vss_url: s(&endpoint["url"]),
            token: crate::secret::Secret::new(s(
                &endpoint["authorization"]["parameters"]["AccessToken"],
            )),
            script,
            run_id: dict_get(github, "run_id")
                .and_then(context_string)
                .unwrap_or_default(),
            repository: dict_get(github, "repository")
                .and_then(context_string)
                .unwrap_or_default(),
            spliced_labels,
            spliced_job_id,
        })
    }
}

/// Reports the result with the job token through the flow's API; exit code 0 when reported.
async fn report(job: &JobFacts, result: &str) -> anyhow::Result<u8> {
    let client = reqwest::Client::builder()
        .user_agent(crate::USER_AGENT)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = if job.vss_url.ends_with('/') {
        job.vss_url.clone()
    } else {
        format!("{}/", job.vss_url)
    };
    let (url, body) = if job.message_type.eq_ignore_ascii_case("RunnerJobRequest") {
        let body = json!({
            "planId": job.plan["planId"], "jobId": job.job_id, "conclusion": result.to_ascii_lowercase(),
            "outputs": {}, "stepResults": [], "annotations": [],
        });
        (format!("{base}completejob"), body)
    } else if job.plan_version >= 8 {
        let url = plan_events_url(&client, &base, &job.plan).await?;
        let body = json!({ "name": "JobCompleted", "jobId": job.job_id, "requestId": job.request_id, "result": result });
        (url, body)
    } else {
        println!(
            "sim-worker: plan version {} < 8: the runner finishes the job request",
            job.plan_version
        );
        return Ok(0);
    };
    for attempt in 1..=5u64 {
        let sent = client
            .post(&url)
            .bearer_auth(job.token.expose())
            .header("Accept", "application/json; api-version=2.0-preview.1")
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                println!("sim-worker: reported {result}");
                return Ok(0);
            }
            Ok(r) if r.status().is_client_error() => {
                eprintln!("sim-worker: reporting {result} refused with {}", r.status());
                return Ok(1);
            }
            Ok(r) => eprintln!(
                "sim-worker: reporting {result} failed with {} (attempt {attempt})",
                r.status()
            ),
            Err(e) => eprintln!("sim-worker: reporting {result} failed: {e} (attempt {attempt})"),
        }
        tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
    }
    Ok(1)
}

/// The plan-events URL, resolved through the location service like a real worker (§3.4.1).
async fn plan_events_url(
    client: &reqwest::Client,
    base: &str,
    plan: &Value,
) -> anyhow::Result<String> {
    const PLAN_EVENTS: &str = "557624af-b29e-4c20-8ab0-0399d2204f3f";
    let cd: Value = client
        .get(format!(
            "{base}_apis/connectionData?connectOptions=1&lastChangeId=-1&lastChangeId64=-1"
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let def = cd["locationServiceData"]["serviceDefinitions"]
        .as_array()
        .and_then(|d| {
            d.iter().find(|d| {
                d["identifier"]
                    .as_str()
                    .is_some_and(|i| i.eq_ignore_ascii_case(PLAN_EVENTS))
            })
        })
        .ok_or_else(|| anyhow!("connectionData lacks the plan events location"))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let path = text(&def["relativePath"])
        .replace("{area}", &text(&def["serviceType"]))
        .replace("{resource}", &text(&def["displayName"]))
        .replace("{scopeIdentifier}", &text(&plan["scopeIdentifier"]))
        .replace("{hubName}", &text(&plan["planType"]))
        .replace("{planId}", &text(&plan["planId"]));
    Ok(format!("{}{}", base.trim_end_matches('/'), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_compare_without_case_or_order() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(same_labels(&v(&["Linux", "gpu"]), &v(&["GPU", "linux"])));
        assert!(!same_labels(&v(&["linux"]), &v(&["linux", "gpu"])));
    }

    #[test]
    fn megascaler_labels_are_read_from_the_spliced_context() {
        let m = json!({
            "messageType": "PipelineAgentJobRequest",
            "resources": { "endpoints": [{ "name": "SystemVssConnection", "url": "http://x/", "authorization": { "parameters": { "AccessToken": "t" } } }] },
            "contextData": { "github": { "t": 2, "d": [
                { "k": "run_id", "v": "7" },
                { "k": "megascaler", "v": { "t": 2, "d": [ { "k": "labels", "v": { "t": 1, "a": [ { "t": 0, "s": "linux" }, "gpu" ] } } ] } }
            ] } }
        });
        let f = JobFacts::from_message(&m).unwrap();
        assert_eq!(
            f.spliced_labels,
            Some(vec!["linux".to_string(), "gpu".to_string()])
        );
        assert_eq!(f.run_id, "7");
        assert_eq!(f.script, WorkerScript::default());
    }

    /// A message as the simulator builds it for a `[linux, gpu]` job 42, optionally with
    /// megascaler's splice.
    fn facts(splice: Option<(&[&str], u64)>) -> JobFacts {
        let script = WorkerScript {
            true_labels: Some(vec!["linux".into(), "gpu".into()]),
            true_job_id: Some(42),
            ..WorkerScript::default()
        };
        let mut github = vec![json!({ "k": "run_id", "v": "7" })];
        if let Some((labels, id)) = splice {
            let a: Vec<Value> = labels.iter().map(|l| json!({ "t": 0, "s": l })).collect();
            github.push(json!({ "k": "megascaler", "v": { "t": 2, "d": [
                { "k": "labels", "v": { "t": 1, "a": a } },
                { "k": "jobid", "v": id },
            ] } }));
        }
        let m = json!({
            "resources": { "endpoints": [{ "name": "SystemVssConnection", "url": "http://x/" }] },
            "variables": { (SCRIPT_VARIABLE): { "value": serde_json::to_string(&script).unwrap() } },
            "contextData": { "github": { "t": 2, "d": github } },
        });
        JobFacts::from_message(&m).unwrap()
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_right_worker_passes_the_identity_check() {
        let f = facts(Some((&["GPU", "linux"], 42)));
        assert_eq!(f.spliced_job_id, Some(42));
        assert_eq!(check_identity(Some(&v(&["gpu", "linux"])), &f), Ok(()));
        assert_eq!(check_identity(None, &facts(None)), Ok(()));
    }

    #[test]
    fn a_worker_started_for_other_labels_fails_even_when_the_splice_agrees() {
        // megascaler identified the job wrongly: its splice and the worker's labels agree
        // with each other, only the sim's truth tells.
        let f = facts(None);
        let err = check_identity(Some(&v(&["linux"])), &f).unwrap_err();
        assert!(err.contains("the job needs [linux, gpu]"), "{err}");
    }

    #[test]
    fn a_wrong_splice_fails() {
        let f = facts(Some((&["linux"], 42)));
        let err = check_identity(Some(&v(&["linux", "gpu"])), &f).unwrap_err();
        assert!(err.contains("spliced labels [linux]"), "{err}");
        let f = facts(Some((&["linux", "gpu"], 41)));
        let err = check_identity(Some(&v(&["linux", "gpu"])), &f).unwrap_err();
        assert!(
            err.contains("spliced job id 41 but this is job 42"),
            "{err}"
        );
    }

    #[test]
    fn labels_without_a_truth_to_check_them_against_fail() {
        let m = json!({
            "resources": { "endpoints": [{ "name": "SystemVssConnection", "url": "http://x/" }] },
        });
        let f = JobFacts::from_message(&m).unwrap();
        let err = check_identity(Some(&v(&["linux"])), &f).unwrap_err();
        assert!(err.contains("no true labels"), "{err}");
    }

    #[test]
    fn blocking_frames_are_read_exactly() {
        let mut bytes = Vec::new();
        for (kind, body) in [(1u32, b"{}".as_slice()), (3, b"".as_slice())] {
            bytes.extend_from_slice(&kind.to_be_bytes());
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        bytes.extend_from_slice(&[0, 0]); // a truncated frame ends the stream
        let (tx, mut rx) = mpsc::unbounded_channel();
        read_frames_blocking(bytes.as_slice(), tx);
        assert_eq!(rx.try_recv().ok(), Some((1, b"{}".to_vec())));
        assert_eq!(rx.try_recv().ok(), Some((3, Vec::new())));
        assert!(rx.try_recv().is_err());
    }
}
