//! The one call to the model, through rig-core: the OpenAI-compatible chat API that
//! llama.cpp's `llama-server` speaks, the question with its JSON schema, bounded in time and in
//! tokens. Before the text leaves the process it is cut to `ai.max_chars` and, with
//! `ai.redact`, its names, addresses and numbers become placeholders (`super::redact`), put
//! back in the answer; the pupils it names are kept only when on the roll (`super::roll`),
//! once put back. Nothing of the question or the answer is logged.

use super::redact::{self, Redactor};
use super::roll::Roll;
use super::suggestion::{self, Suggestion};
use crate::config::{AiProvider, AiSettings};
use crate::directory::Directory;
use rig_core::completion::CompletionRequest;
use rig_core::providers::openai::OpenAIConfig;
use rig_core::providers::openai::wire::{AZURE, Chat, LLAMACPP, OLLAMA, OPENAI};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The answer is bounded by the schema; this bounds the tokens a looping model can spend.
const MAX_TOKENS: u64 = 400;

/// Why a call gave no answer. None of these carries the text sent.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    #[error("the model did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the model server failed: {0}")]
    Provider(String),
}

/// The configured model.
pub struct Reader {
    model: rig_core::Model<Chat>,
    name: String,
    timeout: Duration,
    redact: bool,
    max_chars: usize,
    /// The redactor of the directory last seen (compiled once per snapshot).
    redactor: Mutex<Option<(Arc<Directory>, Arc<Redactor>)>>,
}

impl Reader {
    pub fn new(settings: &AiSettings) -> Reader {
        let key = settings.api_key.clone().unwrap_or_default();
        let dialect = match settings.provider {
            AiProvider::Llamacpp => &LLAMACPP,
            AiProvider::Ollama => &OLLAMA,
            AiProvider::OpenaiCompatible => &OPENAI,
            AiProvider::Azure => &AZURE,
        };
        let mut config = OpenAIConfig::with_key(dialect, key).with_base_url(settings.base_url.clone());
        if let Some(v) = &settings.api_version {
            config = config.with_api_version(v.clone());
        }
        // Azure serves the model as a deployment, named in the URL.
        let asked = settings.deployment.clone().unwrap_or_else(|| settings.model.clone());
        Reader {
            model: config.client().chat(asked),
            name: settings.model.clone(),
            timeout: settings.timeout,
            redact: settings.redact,
            max_chars: settings.max_chars,
            redactor: Mutex::new(None),
        }
    }

    /// The model's name, as suggestions are labelled.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether names and numbers are taken out before the text is sent.
    pub fn redacts(&self) -> bool {
        self.redact
    }

    /// Asks the model about `text`: `Ok(None)` when it answered but the answer does not parse.
    /// The text is cut, and redacted against `directory` when `ai.redact` is on; the answer's
    /// summary, quotes and pupils' names are mapped back, and the names matched to the roll.
    pub async fn suggest(&self, text: &str, categories: &[String], directory: &Arc<Directory>) -> Result<Option<Suggestion>, AiError> {
        let text = redact::cut(text, self.max_chars);
        let redacted = self.redact.then(|| self.redactor(directory).redact(&text));
        let sent = redacted.as_ref().map_or(text.as_str(), |r| r.text.as_str());
        let roll = Roll::new(directory);
        let pupil = |name: &str| roll.find(&redacted.as_ref().map_or_else(|| name.to_string(), |r| r.restore(name)));
        let Some(mut s) = self.ask(sent, categories, &pupil).await? else { return Ok(None) };
        if let Some(r) = &redacted {
            s.summary = r.restore(&s.summary);
            s.reasons = s.reasons.iter().map(|q| r.restore(q)).collect();
        }
        Ok(Some(s))
    }

    fn redactor(&self, directory: &Arc<Directory>) -> Arc<Redactor> {
        let mut held = self.redactor.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((dir, r)) = held.as_ref()
            && Arc::ptr_eq(dir, directory)
        {
            return r.clone();
        }
        let r = Arc::new(Redactor::new(directory));
        *held = Some((directory.clone(), r.clone()));
        r
    }

    /// One call with `text` as it is to be sent; the answer checked against it.
    async fn ask(
        &self,
        text: &str,
        categories: &[String],
        pupil: &(dyn Fn(&str) -> Option<i64> + Sync),
    ) -> Result<Option<Suggestion>, AiError> {
        let schema = rig_core::schemars::Schema::try_from(suggestion::schema(categories))
            .map_err(|e| AiError::Provider(format!("the answer's schema is invalid: {e}")))?;
        let request = CompletionRequest::new(format!("Message:\n{text}"))
            .preamble(suggestion::instructions(categories))
            .temperature(0.0)
            .max_tokens(MAX_TOKENS)
            .output_schema(schema);
        let answer = match tokio::time::timeout(self.timeout, self.model.call(request)).await {
            Err(_) => return Err(AiError::Timeout(self.timeout)),
            Ok(Err(e)) => return Err(AiError::Provider(one_line(&e.to_string()))),
            Ok(Ok(answer)) => answer,
        };
        Ok(suggestion::parse(&answer.text(), text, categories, &self.name, pupil))
    }
}

/// A provider's error on one line, without the reply body (it may echo the message).
fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or_default();
    first.chars().take(200).collect()
}
