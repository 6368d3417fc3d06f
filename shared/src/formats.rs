//! Output formats of docs/api.md: name, MIME type, file extension, and which
//! sample rates each can carry. The gateway refuses a rate a format cannot
//! carry at request time; the worker resamples to any rate allowed here.

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

    /// The format of docs/api.md's `format` field, if it is one.
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

    /// Whether audio of this format can be produced at `rate` Hz. Opus
    /// codes 8, 12, 16, 24 and 48 kHz only (RFC 6716 §2); LAME's MPEG-1/2/2.5
    /// layer III takes the rates of [`MP3_RATES`]; WAV, FLAC and raw PCM
    /// carry any rate.
    pub fn supports_sample_rate(self, rate: u32) -> bool {
        match self {
            Self::Ogg => OPUS_RATES.contains(&rate),
            Self::Mp3 => MP3_RATES.contains(&rate),
            Self::Wav | Self::Flac | Self::Pcm => (1..=192_000).contains(&rate),
        }
    }

    /// The rate used when the request names none: the engine's own rate,
    /// except for Opus, which cannot carry it and gets 48 kHz.
    pub fn default_sample_rate(self, engine_rate: u32) -> u32 {
        if self.supports_sample_rate(engine_rate) {
            engine_rate
        } else {
            48_000
        }
    }
}

/// The rates an Opus stream can be encoded at.
pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// The rates an MP3 (MPEG-1, 2 and 2.5 layer III) stream can carry.
pub const MP3_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_refuses_rates_it_cannot_code_and_defaults_to_48k() {
        assert!(AudioFormat::Ogg.supports_sample_rate(24_000));
        assert!(!AudioFormat::Ogg.supports_sample_rate(22_050));
        assert!(!AudioFormat::Ogg.supports_sample_rate(44_100));
        assert_eq!(AudioFormat::Ogg.default_sample_rate(22_050), 48_000);
        assert_eq!(AudioFormat::Wav.default_sample_rate(22_050), 22_050);
        assert!(AudioFormat::Mp3.supports_sample_rate(44_100));
        assert!(!AudioFormat::Mp3.supports_sample_rate(96_000));
    }
}
