//! Voice previews (`GET /v1/voices/{id}/preview`, `GET
//! /v1/voices/preview?recipe=…`): a short clip of a fixed sentence in a
//! voice, rendered once by a worker (`JobMessage::PreviewV1`) and kept in
//! the object store for every later request.
//!
//! The storage key is a pure function of what is heard — the engine voice
//! (its serialised [`EngineVoice`]), the text and the format — so two
//! voices with one recipe (a designed preset and a workspace's designed
//! voice of the same blend, or one blend written two ways) share one
//! preview, and nothing of a workspace (no id, no name) is in the key. The
//! worker derives the key again from the job and refuses a job whose key
//! differs, so a job cannot write anywhere else in the store.
//!
//! A preview that cannot be rendered (a voice the worker lacks) leaves a
//! small JSON note at [`error_key`] instead, so the waiting request can
//! answer at once rather than time out.

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::formats::AudioFormat;
use crate::voices::EngineVoice;

/// The formats a preview can be asked in (`format`; default the first).
pub const FORMATS: [AudioFormat; 2] = [AudioFormat::Mp3, AudioFormat::Wav];

/// Where previews live in the store: apart from the workspaces' audio
/// (`{workspace}/{generation}.{ext}`).
pub const PREFIX: &str = "previews";

/// Bumped when the rendering of previews changes, so old clips are not
/// served for new ones.
const VERSION: &str = "preview.v1";

/// The sentence a voice speaks, in the language it phonemises in (the
/// primary subtag of its espeak-ng voice); English where there is none.
pub fn text_for(voice: &EngineVoice) -> &'static str {
    let primary = voice
        .espeak_voice
        .split(['-', '_', '/'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match primary.as_str() {
        "es" => {
            "¡Hola! Así suena mi voz. Puedo leer en voz alta tus historias, tus noticias y tus mensajes."
        }
        "fr" => {
            "Bonjour ! Voici ma voix. Je peux lire à voix haute vos histoires, vos actualités et vos messages."
        }
        "it" => {
            "Ciao! Questa è la mia voce. Posso leggere ad alta voce le tue storie, le notizie e i messaggi."
        }
        "pt" => {
            "Olá! Esta é a minha voz. Posso ler em voz alta as suas histórias, notícias e mensagens."
        }
        "de" => {
            "Hallo! So klingt meine Stimme. Ich lese Ihnen Geschichten, Nachrichten und Texte vor."
        }
        "hi" => "नमस्ते! यह मेरी आवाज़ है। कहानियाँ, समाचार और संदेश, सब कुछ पढ़ने के लिए तैयार।",
        _ => {
            "Hello! This is how I sound. I can read your stories, your news and your messages aloud."
        }
    }
}

/// The key of the preview of `text` in `voice` as `format`:
/// `previews/{sha256}.{ext}`.
pub fn key(voice: &EngineVoice, text: &str, format: AudioFormat) -> Path {
    let mut hash = Sha256::new();
    hash.update(VERSION.as_bytes());
    hash.update([0]);
    // Serialising a struct writes its fields in declaration order: the
    // same voice always gives the same bytes.
    hash.update(serde_json::to_vec(voice).unwrap_or_default());
    hash.update([0]);
    hash.update(text.as_bytes());
    hash.update([0]);
    hash.update(format.as_str().as_bytes());
    Path::from(format!(
        "{PREFIX}/{}.{}",
        hex::encode(hash.finalize()),
        format.extension()
    ))
}

/// Where a preview that cannot be rendered says why ([`Failure`]).
pub fn error_key(key: &Path) -> Path {
    Path::from(format!("{key}.error"))
}

/// Why a preview cannot be rendered, as the worker leaves it at
/// [`error_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voices::KokoroPack;

    fn blend(weights: &[(&str, f32)]) -> EngineVoice {
        EngineVoice::kokoro(
            "en-us",
            weights
                .iter()
                .map(|(name, weight)| KokoroPack {
                    name: (*name).to_owned(),
                    weight: *weight,
                })
                .collect(),
        )
    }

    #[test]
    fn the_key_depends_on_the_voice_the_text_and_the_format_only() {
        let a = blend(&[("af_bella", 0.75), ("af_sky", 0.25)]);
        let text = text_for(&a);
        let key_a = key(&a, text, AudioFormat::Mp3);
        assert_eq!(key_a, key(&a.clone(), text, AudioFormat::Mp3));
        assert!(key_a.as_ref().starts_with("previews/"), "{key_a}");
        assert!(key_a.as_ref().ends_with(".mp3"), "{key_a}");
        assert_ne!(key_a, key(&a, text, AudioFormat::Wav));
        assert_ne!(key_a, key(&a, "Another sentence.", AudioFormat::Mp3));
        let b = blend(&[("af_bella", 0.5), ("af_sky", 0.5)]);
        assert_ne!(key_a, key(&b, text, AudioFormat::Mp3));
        assert_eq!(error_key(&key_a).as_ref(), format!("{key_a}.error"));
    }

    #[test]
    fn the_job_is_tagged_and_versioned_and_round_trips() {
        let voice = blend(&[("af_bella", 1.0)]);
        let text = text_for(&voice);
        let job = crate::messages::JobMessage::PreviewV1 {
            voice: voice.clone(),
            text: text.to_owned(),
            format: AudioFormat::Mp3,
            key: key(&voice, text, AudioFormat::Mp3).to_string(),
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["type"], "preview.v1");
        assert_eq!(json["format"], "mp3");
        assert_eq!(json["voice"]["kokoro"]["packs"][0]["name"], "af_bella");
        assert_eq!(
            serde_json::from_value::<crate::messages::JobMessage>(json).unwrap(),
            job
        );
    }

    #[test]
    fn a_voice_speaks_the_sentence_of_its_language() {
        let mut v = blend(&[("ef_dora", 1.0)]);
        v.espeak_voice = "es".into();
        assert!(text_for(&v).starts_with("¡Hola!"));
        v.espeak_voice = "en-gb".into();
        assert!(text_for(&v).starts_with("Hello!"));
        v.espeak_voice = "fi".into();
        assert!(text_for(&v).starts_with("Hello!"));
    }
}
