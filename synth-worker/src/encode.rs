//! Encoders from the engine's mono s16 samples to the stored file formats.
//! Implemented: `wav` (16-bit PCM RIFF at the engine's rate) and `pcm`
//! (raw s16le). Every other format is refused before rendering
//! (`AudioFormat::is_available` is false for it), so this module never
//! sees one in practice.

use std::io::Cursor;

use shared::formats::AudioFormat;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("no encoder for {0}")]
    Unsupported(AudioFormat),
    #[error("WAV encoding failed")]
    Wav(#[from] hound::Error),
}

/// Encodes `samples` (mono, `sample_rate` Hz) as `format`.
pub fn encode(
    format: AudioFormat,
    samples: &[i16],
    sample_rate: u32,
) -> Result<Vec<u8>, EncodeError> {
    match format {
        AudioFormat::Wav => wav(samples, sample_rate),
        AudioFormat::Pcm => Ok(crate::engine::protocol::samples_to_le_bytes(samples)),
        other => Err(EncodeError::Unsupported(other)),
    }
}

fn wav(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut writer = hound::WavWriter::new(&mut out, spec)?;
        let mut fast = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            fast.write_sample(s);
        }
        fast.flush()?;
        writer.finalize()?;
    }
    Ok(out.into_inner())
}

/// Milliseconds of audio in `samples` at `sample_rate` (rounded down).
pub fn duration_ms(samples: usize, sample_rate: u32) -> i64 {
    if sample_rate == 0 {
        return 0;
    }
    (samples as u64 * 1000 / u64::from(sample_rate)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips_through_hound() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 7 % 2000 - 1000) as i16).collect();
        let bytes = encode(AudioFormat::Wav, &samples, 22050).unwrap();
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().sample_rate, 22050);
        assert_eq!(reader.spec().channels, 1);
        let back: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn pcm_is_raw_little_endian() {
        assert_eq!(
            encode(AudioFormat::Pcm, &[1, -2], 22050).unwrap(),
            vec![1, 0, 0xfe, 0xff]
        );
    }

    #[test]
    fn unimplemented_formats_are_refused() {
        assert!(encode(AudioFormat::Mp3, &[0], 22050).is_err());
    }

    #[test]
    fn duration_comes_from_the_sample_count() {
        assert_eq!(duration_ms(22050 * 3 + 11025, 22050), 3500);
    }
}
