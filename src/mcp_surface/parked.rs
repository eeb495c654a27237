//! Multi-round-trip requests, bridged (protocol 2026-07-28 in front, an
//! older session behind).
//!
//! A downstream on a 2025-11-25 session that needs the client's input
//! mid-request sends it a request (sampling, elicitation, roots). A
//! 2026-07-28 client takes no such request: the server answers with an
//! `input_required` result instead, and the client sends its request again
//! with its `inputResponses` and the `requestState` it was given. So for a
//! 2026-07-28 `tools/call`, `prompts/get` or `resources/read`, woollama runs
//! the downstream request in a task of its own, and when the downstream asks
//! for input, answers the client `input_required` with the downstream's
//! request and parks the call under a fresh, random `requestState`. The
//! retry finds the call by that state, hands the client's answers to the
//! waiting downstream, and waits again: for the result, or for the next
//! question.
//!
//! (A 2026-07-28 downstream needs none of this: its own `input_required`
//! goes to the client as it came, and the retry's state, which woollama did
//! not issue, goes back to it — see `tools::Retry`.)
//!
//! Bounded: a parked call waits at most [`tools::ASK_LIMIT`] for its retry,
//! and at most [`MAX_PARKED`] calls wait at once (the oldest goes first);
//! a call let go is aborted, and the downstream's waiting request gets an
//! error. A `requestState` woollama did not issue (or issued and let go)
//! is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, GetPromptResponse, InputRequest, InputRequiredResult, InputResponses,
    ReadResourceResponse,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::tools::{self, Ask};

/// The most calls that may wait for their clients' retries at once.
pub const MAX_PARKED: usize = 256;

type Answer = oneshot::Sender<Result<Value, ErrorData>>;

/// What a bridged request came back with.
pub enum Reply {
    Tool(CallToolResponse),
    Prompt(GetPromptResponse),
    Resource(ReadResourceResponse),
}

/// How a bridged request ended.
pub type Outcome = Result<Reply, tools::Error>;

/// A downstream call in its own task, aborted when dropped.
struct Running(tokio::task::JoinHandle<Outcome>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A bridged call: the downstream call running, the questions it asked
/// that the client has not answered yet, and where its next ones arrive.
pub struct Bridged {
    /// The method it answers and what it names (the tool, the prompt, the
    /// resource): a state is good for that request only.
    method: &'static str,
    target: String,
    running: Running,
    asks: mpsc::UnboundedReceiver<Ask>,
    open: BTreeMap<String, (InputRequest, Answer)>,
    next_key: u64,
    since: Instant,
}

/// What a round ended with.
pub enum Round {
    /// The downstream call finished.
    Done(Outcome),
    /// It waits for the client's input.
    Asked(InputRequiredResult),
}

/// The calls waiting for their clients' retries, shared by every session.
#[derive(Clone, Default)]
pub struct Parked(Arc<Mutex<HashMap<String, Bridged>>>);

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bridged>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the call parked under `state`, if woollama issued it, still
    /// holds it, and issued it for this `method` of this `target`.
    pub fn take(&self, state: &str, method: &str, target: &str) -> Option<Bridged> {
        let mut parked = self.lock();
        if parked
            .get(state)
            .is_some_and(|c| c.method != method || c.target != target)
        {
            return None;
        }
        parked
            .remove(state)
            .filter(|c| c.since.elapsed() < tools::ASK_LIMIT)
    }

    /// Parks `call` under a fresh state, letting go of calls that waited
    /// too long, and of the oldest beyond [`MAX_PARKED`].
    fn park(&self, call: Bridged) -> String {
        let state = format!(
            "wl1.{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut parked = self.lock();
        parked.retain(|_, c| c.since.elapsed() < tools::ASK_LIMIT);
        while parked.len() >= MAX_PARKED {
            let Some(oldest) = parked
                .iter()
                .min_by_key(|(_, c)| c.since)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            parked.remove(&oldest);
        }
        parked.insert(state.clone(), call);
        state
    }
}

impl Bridged {
    /// The downstream call, started; its questions arrive on `asks`.
    pub fn start(
        method: &'static str,
        target: String,
        call: impl std::future::Future<Output = Outcome> + Send + 'static,
        asks: mpsc::UnboundedReceiver<Ask>,
    ) -> Self {
        Self {
            method,
            target,
            running: Running(tokio::spawn(call)),
            asks,
            open: BTreeMap::new(),
            next_key: 1,
            since: Instant::now(),
        }
    }

    /// Hands the downstream the client's answers; a question the client did
    /// not answer stays open (and is asked again).
    pub fn answer(&mut self, responses: Option<InputResponses>) {
        for (key, value) in responses.unwrap_or_default() {
            if let Some((_, answer)) = self.open.remove(&key) {
                let _ = answer.send(Ok(value));
            }
        }
    }

    fn add(&mut self, ask: Ask) {
        let key = format!("input-{}", self.next_key);
        self.next_key += 1;
        self.open.insert(key, (ask.request, ask.answer));
    }

    /// Runs the call to its end or its next question: then parks it in
    /// `parked` and returns the `input_required` result.
    pub async fn round(mut self, parked: &Parked) -> Round {
        let ended = |done: Result<_, tokio::task::JoinError>| {
            Round::Done(done.unwrap_or_else(|e| Err(tools::Error::Aborted(e.to_string()))))
        };
        // A call that ended while parked (it timed out) is over, whatever
        // it had asked.
        if self.running.0.is_finished() {
            return ended((&mut self.running.0).await);
        }
        if self.open.is_empty() {
            tokio::select! {
                done = &mut self.running.0 => return ended(done),
                Some(ask) = self.asks.recv() => self.add(ask),
            }
        }
        // Questions asked together are answered together.
        while let Ok(ask) = self.asks.try_recv() {
            self.add(ask);
        }
        let requests: BTreeMap<String, InputRequest> = self
            .open
            .iter()
            .map(|(k, (r, _))| (k.clone(), r.clone()))
            .collect();
        self.since = Instant::now();
        let state = parked.park(self);
        Round::Asked(InputRequiredResult::new(Some(requests), Some(state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Bridged {
        let (_asks, asked) = mpsc::unbounded_channel();
        Bridged::start("tools/call", "t".into(), std::future::pending(), asked)
    }

    #[tokio::test]
    async fn at_most_max_parked_wait_and_the_oldest_goes_first() {
        let parked = Parked::default();
        let first = parked.park(waiting());
        let mut later = Vec::new();
        for _ in 0..MAX_PARKED {
            later.push(parked.park(waiting()));
        }
        assert!(
            parked.take(&first, "tools/call", "t").is_none(),
            "the oldest was not let go"
        );
        assert!(
            parked.take(&later[0], "prompts/get", "t").is_none(),
            "a state is good for its own method only"
        );
        assert!(
            parked.take(&later[0], "tools/call", "other").is_none(),
            "a state is good for its own tool only"
        );
        assert!(parked.take(&later[0], "tools/call", "t").is_some());
        assert!(parked.take("wl1.made-up", "tools/call", "t").is_none());
    }

    #[tokio::test]
    async fn a_retry_after_the_wait_is_over_is_refused() {
        let parked = Parked::default();
        let mut late = waiting();
        late.since = Instant::now()
            .checked_sub(tools::ASK_LIMIT + std::time::Duration::from_secs(1))
            .expect("an instant that long ago");
        let state = parked.park(late);
        // Parking does not reset the clock of a call parked before.
        assert!(parked.take(&state, "tools/call", "t").is_none());
    }

    #[tokio::test]
    async fn a_call_let_go_is_aborted_and_its_question_answered_with_an_error() {
        let (asks, asked) = mpsc::unbounded_channel();
        let (answer, answered) = oneshot::channel();
        let call = Bridged::start("tools/call", "t".into(), std::future::pending(), asked);
        asks.send(Ask {
            request: InputRequest::ListRoots(rmcp::model::ListRootsRequest::default()),
            answer,
        })
        .expect("send");
        let parked = Parked::default();
        let Round::Asked(asked) = call.round(&parked).await else {
            panic!("no question")
        };
        assert_eq!(asked.input_requests.as_ref().map(BTreeMap::len), Some(1));
        let state = asked.request_state.expect("state");
        drop(parked.take(&state, "tools/call", "t"));
        // The downstream's waiting request sees its answer channel close.
        assert!(answered.await.is_err());
    }
}
