//! Output formats of API.md: name, MIME type, file extension, and whether
//! the synth-worker can produce it yet.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    Wav,
    Mp3,
    Ogg,
    Flac,
    Pcm,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 5] = [Self::Wav, Self::Mp3, Self::Ogg, Self::Flac, Self::Pcm];

    /// The format of API.md's `format` field, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::Flac => "flac",
            Self::Pcm => "pcm",
        }
    }

    /// The Content-Type the audio is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Mp3 => "audio/mpeg",
            Self::Ogg => "audio/ogg",
            Self::Flac => "audio/flac",
            // Raw signed 16-bit little-endian mono samples.
            Self::Pcm => "audio/L16",
        }
    }

    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// Whether the synth-worker has an encoder for it.
    pub fn is_available(self) -> bool {
        matches!(self, Self::Wav | Self::Pcm)
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
