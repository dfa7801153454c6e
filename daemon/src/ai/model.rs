//! The one call to the model, through rig-core: the OpenAI-compatible chat API that
//! llama.cpp's `llama-server` speaks, the question with its JSON schema, bounded in time and in
//! tokens. Nothing of the question or the answer is logged.

use super::suggestion::{self, Suggestion};
use crate::config::{AiProvider, AiSettings};
use rig_core::completion::CompletionRequest;
use rig_core::providers::openai::OpenAIConfig;
use rig_core::providers::openai::wire::{Chat, LLAMACPP};
use std::time::Duration;

/// The answer is bounded by the schema; this bounds the tokens a looping model can spend.
const MAX_TOKENS: u64 = 400;

/// Text longer than this (characters) is cut before it is sent.
pub const MAX_TEXT_CHARS: usize = 6_000;

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
}

impl Reader {
    pub fn new(settings: &AiSettings) -> Reader {
        let config = match settings.provider {
            AiProvider::Llamacpp => OpenAIConfig::with_key(&LLAMACPP, settings.api_key.clone().unwrap_or_default()),
        }
        .with_base_url(settings.base_url.clone());
        Reader { model: config.client().chat(settings.model.clone()), name: settings.model.clone(), timeout: settings.timeout }
    }

    /// The model's name, as suggestions are labelled.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Asks the model about `text`: `Ok(None)` when it answered but the answer does not parse.
    pub async fn suggest(&self, text: &str, categories: &[String]) -> Result<Option<Suggestion>, AiError> {
        let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
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
        Ok(suggestion::parse(&answer.text(), &text, categories, &self.name))
    }
}

/// A provider's error on one line, without the reply body (it may echo the message).
fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or_default();
    first.chars().take(200).collect()
}
