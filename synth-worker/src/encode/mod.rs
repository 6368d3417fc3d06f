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
    let data = wav_data_len(samples.len() as u64 * 2)?;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(&wav_header(sample_rate, data));
    out.resize(44 + data as usize, 0);
    crate::engine::protocol::write_le_bytes(samples, &mut out[44..]);
    Ok(out)
}

/// The data size a streamed WAV's header says: the largest whole number of
/// samples a RIFF file can hold.
pub const WAV_STREAM_DATA: u32 = (u32::MAX - 36) & !1;

fn wav_data_len(bytes: u64) -> Result<u32, EncodeError> {
    u32::try_from(bytes)
        .ok()
        .filter(|&d| d <= u32::MAX - 36)
        .ok_or_else(|| EncodeError::Codec("WAV: audio over 4 GiB".into()))
}

/// The RIFF/WAVE header of `data` bytes of mono s16le; a streamed WAV,
/// whose length is not known yet, says the largest size
/// ([`WAV_STREAM_DATA`]), as streaming servers do, and readers read to the end.
fn wav_header(sample_rate: u32, data: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let fields: [&[u8]; 13] = [
        b"RIFF",
        &(36u32.saturating_add(data)).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(), // PCM
        &1u16.to_le_bytes(), // mono
        &sample_rate.to_le_bytes(),
        &(sample_rate * 2).to_le_bytes(), // bytes per second
        &2u16.to_le_bytes(),              // block align
        &16u16.to_le_bytes(),             // bits per sample
        b"data",
        &data.to_le_bytes(),
        b"",
    ];
    let mut at = 0;
    for f in fields {
        h[at..at + f.len()].copy_from_slice(f);
        at += f.len();
    }
    h
}

/// An encoder fed the track piece by piece, for streaming: each push gives
/// the bytes that can be sent now, [`Stream::finish`] the rest and the
/// file to store, which is every byte sent with what only the end can tell
/// filled in (WAV's sizes, MP3's LAME tag). FLAC is encoded whole at the
/// end (its stream info comes first and needs the total).
pub struct Stream {
    from_rate: u32,
    to_rate: u32,
    kind: StreamKind,
    /// Every byte given out so far, in order.
    sent: Vec<u8>,
    samples_out: u64,
}

enum StreamKind {
    Pcm,
    Wav,
    Mp3(lossy::Mp3Stream),
    Ogg(lossy::OggOpusStream),
    Flac(Vec<i16>),
}

impl Stream {
    pub fn new(format: AudioFormat, from_rate: u32, to_rate: u32) -> Result<Self, EncodeError> {
        if !format.supports_sample_rate(to_rate) {
            return Err(EncodeError::UnsupportedRate(format, to_rate));
        }
        let kind = match format {
            AudioFormat::Pcm => StreamKind::Pcm,
            AudioFormat::Wav => StreamKind::Wav,
            AudioFormat::Mp3 => StreamKind::Mp3(lossy::Mp3Stream::new(to_rate)?),
            AudioFormat::Ogg => StreamKind::Ogg(lossy::OggOpusStream::new(to_rate)?),
            AudioFormat::Flac => StreamKind::Flac(Vec::new()),
        };
        Ok(Self {
            from_rate,
            to_rate,
            kind,
            sent: Vec::new(),
            samples_out: 0,
        })
    }

    /// Encodes the next piece of the track (at the engine's rate; each
    /// piece is resampled on its own: pieces start and end faded to
    /// silence, so nothing is heard at the seams).
    pub fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, EncodeError> {
        let resampled;
        let samples = if self.from_rate == self.to_rate {
            samples
        } else {
            resampled = resample::resample(samples, self.from_rate, self.to_rate)?;
            &resampled
        };
        let first = self.samples_out == 0 && self.sent.is_empty();
        self.samples_out += samples.len() as u64;
        let bytes = match &mut self.kind {
            StreamKind::Pcm => crate::engine::protocol::samples_to_le_bytes(samples),
            StreamKind::Wav => {
                let mut out = Vec::with_capacity(44 + samples.len() * 2);
                if first {
                    out.extend_from_slice(&wav_header(self.to_rate, WAV_STREAM_DATA));
                }
                out.extend(crate::engine::protocol::samples_to_le_bytes(samples));
                out
            }
            StreamKind::Mp3(mp3) => mp3.push(samples)?,
            StreamKind::Ogg(ogg) => ogg.push(samples)?,
            StreamKind::Flac(all) => {
                all.extend_from_slice(samples);
                Vec::new()
            }
        };
        self.sent.extend_from_slice(&bytes);
        Ok(bytes)
    }

    /// The last bytes to send, and the whole file.
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<u8>), EncodeError> {
        let tail = match self.kind {
            StreamKind::Pcm => Vec::new(),
            StreamKind::Wav => {
                if self.sent.is_empty() {
                    self.sent.extend_from_slice(&wav_header(self.to_rate, 0));
                }
                let data = wav_data_len(self.samples_out * 2)?;
                self.sent[..44].copy_from_slice(&wav_header(self.to_rate, data));
                Vec::new()
            }
            StreamKind::Mp3(mp3) => mp3.finish(&mut self.sent)?,
            StreamKind::Ogg(ogg) => {
                let tail = ogg.finish()?;
                self.sent.extend_from_slice(&tail);
                tail
            }
            StreamKind::Flac(all) => {
                let file = flac::flac(&all, self.to_rate)?;
                self.sent = file.clone();
                file
            }
        };
        Ok((tail, self.sent))
    }
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
    fn a_stream_sends_what_the_whole_file_holds() {
        let piece = |k: i16| -> Vec<i16> { (0..5_000).map(|i: i16| (i % 50) * 40 * k).collect() };
        let pieces = [piece(1), piece(2), piece(3)];
        let track: Vec<i16> = pieces.concat();
        for format in [
            AudioFormat::Wav,
            AudioFormat::Pcm,
            AudioFormat::Mp3,
            AudioFormat::Ogg,
            AudioFormat::Flac,
        ] {
            let mut stream = Stream::new(format, 24_000, 24_000).unwrap();
            let mut sent = Vec::new();
            for p in &pieces {
                sent.extend(stream.push(p).unwrap());
            }
            let (tail, file) = stream.finish().unwrap();
            sent.extend(tail);
            let whole = encode(format, &track, 24_000, 24_000).unwrap();
            if format == AudioFormat::Ogg {
                // Pages end where pieces do; the packets are the same.
                assert_eq!(sent, file);
                let packets = |b: &[u8]| {
                    let mut r = ogg::PacketReader::new(Cursor::new(b.to_vec()));
                    let mut out = Vec::new();
                    while let Some(p) = r.read_packet().unwrap() {
                        let granule = p.absgp_page();
                        out.push((p.data, granule));
                    }
                    out
                };
                let (a, b) = (packets(&sent), packets(&whole));
                assert_eq!(a.len(), b.len());
                assert!(a.iter().zip(&b).all(|(x, y)| x.0 == y.0));
                assert_eq!(a.last().unwrap().1, b.last().unwrap().1, "final granule");
                continue;
            }
            assert_eq!(
                file, whole,
                "{format}: the stored file is the whole-file encoding"
            );
            match format {
                // Only the header differs: sizes a stream cannot know yet.
                AudioFormat::Wav => {
                    assert_eq!(sent[44..], whole[44..]);
                    assert_eq!(&sent[40..44], &WAV_STREAM_DATA.to_le_bytes());
                    let reader = hound::WavReader::new(Cursor::new(&sent)).unwrap();
                    assert_eq!(reader.spec().sample_rate, 24_000);
                }
                // Only the first frame differs: the LAME tag, written last.
                AudioFormat::Mp3 => {
                    assert_eq!(sent.len(), whole.len());
                    let differ = sent.iter().zip(&whole).rposition(|(a, b)| a != b).unwrap();
                    assert!(differ < 400, "bytes differ up to {differ}");
                }
                _ => assert_eq!(sent, whole, "{format}"),
            }
        }
    }

    #[test]
    fn a_stream_resamples_each_piece_to_the_asked_rate() {
        let mut stream = Stream::new(AudioFormat::Pcm, 22_050, 24_000).unwrap();
        let mut n = 0;
        for _ in 0..3 {
            n += stream.push(&[100; 22_050]).unwrap().len() / 2;
        }
        assert!((n as i64 - 72_000).abs() < 30, "{n} samples");
    }

    #[test]
    fn duration_comes_from_the_sample_count() {
        assert_eq!(duration_ms(22050 * 3 + 11025, 22050), 3500);
    }
}
