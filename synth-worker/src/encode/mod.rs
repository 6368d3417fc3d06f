//! Encoders from the engine's mono s16 samples to the five stored formats:
//! `wav` (16-bit PCM RIFF, `hound`), `pcm` (raw s16le), `mp3` (LAME),
//! `ogg` (Opus in Ogg) and `flac` (`flacenc`), at any rate the format
//! allows (`AudioFormat::supports_sample_rate`), resampled with `rubato`
//! when it is not the engine's own.

mod flac;
mod lossy;
pub mod resample;

use shared::formats::AudioFormat;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} cannot carry {1} Hz audio")]
    UnsupportedRate(AudioFormat, u32),
    #[error(transparent)]
    Resample(#[from] resample::ResampleError),
    #[error("{0}")]
    Codec(String),
}

/// Encodes `samples` (mono, `from_rate` Hz) as `format` at `to_rate` Hz.
pub fn encode(
    format: AudioFormat,
    samples: &[i16],
    from_rate: u32,
    to_rate: u32,
) -> Result<Vec<u8>, EncodeError> {
    if !format.supports_sample_rate(to_rate) {
        return Err(EncodeError::UnsupportedRate(format, to_rate));
    }
    let resampled;
    let samples = if from_rate == to_rate {
        samples
    } else {
        resampled = resample::resample(samples, from_rate, to_rate)?;
        &resampled
    };
    match format {
        AudioFormat::Wav => wav(samples, to_rate),
        AudioFormat::Pcm => Ok(crate::engine::protocol::samples_to_le_bytes(samples)),
        AudioFormat::Mp3 => lossy::mp3(samples, to_rate),
        AudioFormat::Ogg => lossy::ogg_opus(samples, to_rate),
        AudioFormat::Flac => flac::flac(samples, to_rate),
    }
}

/// A canonical 44-byte RIFF/WAVE header and the samples as they are in
/// memory (little-endian): one copy, no per-sample calls, so WAV costs
/// what PCM costs.
fn wav(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let data = u32::try_from(samples.len() * 2)
        .ok()
        .filter(|&d| d <= u32::MAX - 36)
        .ok_or_else(|| EncodeError::Codec("WAV: audio over 4 GiB".into()))?;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    out.resize(44 + data as usize, 0);
    crate::engine::protocol::write_le_bytes(samples, &mut out[44..]);
    Ok(out)
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
    use std::io::Cursor;

    use super::*;

    #[test]
    fn wav_round_trips_through_hound() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 7 % 2000 - 1000) as i16).collect();
        let bytes = encode(AudioFormat::Wav, &samples, 22050, 22050).unwrap();
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(reader.spec().sample_rate, 22050);
        assert_eq!(reader.spec().channels, 1);
        let back: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn pcm_is_raw_little_endian() {
        assert_eq!(
            encode(AudioFormat::Pcm, &[1, -2], 22050, 22050).unwrap(),
            vec![1, 0, 0xfe, 0xff]
        );
    }

    #[test]
    fn rates_a_format_cannot_carry_are_refused() {
        assert!(matches!(
            encode(AudioFormat::Ogg, &[0; 100], 22050, 22050),
            Err(EncodeError::UnsupportedRate(AudioFormat::Ogg, 22050))
        ));
    }

    #[test]
    fn wav_at_another_rate_is_resampled_to_the_right_length() {
        let bytes = encode(AudioFormat::Wav, &[100; 22050], 22050, 16000).unwrap();
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(
            (reader.spec().sample_rate, reader.duration()),
            (16000, 16000)
        );
    }

    #[test]
    fn duration_comes_from_the_sample_count() {
        assert_eq!(duration_ms(22050 * 3 + 11025, 22050), 3500);
    }
}
