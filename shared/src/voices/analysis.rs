//! What a cloned voice is made of: WAV samples are decoded, checked (a WAV,
//! not empty, not silent, at most 5 minutes in all), and measured — median
//! pitch, pitch range (10th to 90th percentile) and speaking rate
//! (syllables per second) — then mapped to espeak-ng parameters that follow
//! that pitch and tempo. espeak-ng is a formant synthesiser: it cannot copy
//! a timbre, only pitch, intonation range and rate (API docs say so).
//!
//! Pitch: normalised cross-correlation on 30 ms frames of the signal taken
//! down to 8 kHz, 60–400 Hz, voiced when the correlation passes 0.6.
//! Rate: peaks of the smoothed energy envelope, at least 90 ms apart, per
//! second of active speech. Both are calibrated against espeak-ng's own
//! output (see the constants), so a sample rendered by espeak-ng at pitch p
//! and rate r clones to about p and r.

use std::io::Read;

use super::EngineVoice;

/// One sample file may be this large.
pub const MAX_SAMPLE_BYTES: usize = 10 * 1024 * 1024;
/// All samples together may last this long.
pub const MAX_TOTAL_SECONDS: f64 = 300.0;
/// The rate analysis runs at.
const RATE: usize = 8_000;
const HOP: usize = RATE / 100;
const WINDOW: usize = RATE * 30 / 1000;
const MIN_LAG: usize = RATE / 400;
const MAX_LAG: usize = RATE / 60;
/// Frames analysed for pitch at most (spread over the samples).
const MAX_PITCH_FRAMES: usize = 4_000;

/// Why samples cannot make a voice; every one is the customer's to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("sample {index} is not a WAV file ({reason})")]
    NotWav { index: usize, reason: String },
    #[error("sample {0} contains no audio")]
    Empty(usize),
    #[error("sample {0} is silent")]
    Silent(usize),
    #[error("the samples last {0:.1} s together; the limit is 300 s")]
    TooLong(f64),
    #[error("no voiced speech was found in the samples; send recordings of one person speaking")]
    NoSpeech,
}

impl SampleError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotWav { .. } => "invalid_sample",
            Self::Empty(_) => "empty_sample",
            Self::Silent(_) => "silent_sample",
            Self::TooLong(_) => "samples_too_long",
            Self::NoSpeech => "no_speech_in_samples",
        }
    }
}

/// A decoded sample: mono, at [`RATE`], and how long the original lasts.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub seconds: f64,
}

/// What was measured of the speaker.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub pitch_median_hz: f64,
    pub pitch_p10_hz: f64,
    pub pitch_p90_hz: f64,
    pub syllables_per_second: f64,
    pub speech_seconds: f64,
    pub total_seconds: f64,
}

/// The duration of a WAV sample, without decoding it.
pub fn wav_seconds(index: usize, bytes: &[u8]) -> Result<f64, SampleError> {
    if bytes.is_empty() {
        return Err(SampleError::Empty(index));
    }
    wav_seconds_from(index, bytes)
}

/// The duration of the WAV `reader` yields, from its header alone (an
/// empty input is refused by the caller, which knows its length).
pub fn wav_seconds_from(index: usize, reader: impl Read) -> Result<f64, SampleError> {
    let reader = open(index, reader)?;
    let spec = reader.spec();
    Ok(f64::from(reader.duration()) / f64::from(spec.sample_rate.max(1)))
}

fn open<R: Read>(index: usize, reader: R) -> Result<hound::WavReader<R>, SampleError> {
    hound::WavReader::new(reader).map_err(|e| SampleError::NotWav {
        index,
        reason: e.to_string(),
    })
}

/// Decodes sample `index` (any PCM or float WAV), mixed to mono at 8 kHz.
pub fn decode(index: usize, bytes: &[u8]) -> Result<Decoded, SampleError> {
    if bytes.is_empty() {
        return Err(SampleError::Empty(index));
    }
    decode_from(index, bytes)
}

/// [`decode`] from a reader, streaming: the samples are mixed to mono and
/// taken down to [`RATE`] as they are read, so memory is the 8 kHz result
/// (≤ 9.6 MB for the 300 s limit), never the file or its samples at the
/// original rate.
pub fn decode_from(index: usize, reader: impl Read) -> Result<Decoded, SampleError> {
    let mut reader = open(index, reader)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let bad = |e: hound::Error| SampleError::NotWav {
        index,
        reason: e.to_string(),
    };
    let mut down = Downsampler::new(spec.sample_rate as usize);
    let (mut frame_sum, mut in_frame, mut frames, mut peak) = (0f32, 0usize, 0usize, 0f32);
    let mut push = |v: f32| {
        frame_sum += v;
        in_frame += 1;
        if in_frame == channels {
            let mono = frame_sum / channels as f32;
            peak = peak.max(mono.abs());
            down.push(mono);
            frames += 1;
            (frame_sum, in_frame) = (0.0, 0);
        }
    };
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in reader.samples::<f32>() {
                push(s.map_err(bad)?);
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            for s in reader.samples::<i32>() {
                push(s.map_err(bad)? as f32 * scale);
            }
        }
    }
    // A last, incomplete frame counts as the mean of what it has.
    if in_frame > 0 {
        let mono = frame_sum / in_frame as f32;
        peak = peak.max(mono.abs());
        down.push(mono);
        frames += 1;
    }
    if frames == 0 {
        return Err(SampleError::Empty(index));
    }
    let seconds = frames as f64 / f64::from(spec.sample_rate.max(1));
    if peak < 0.003 {
        return Err(SampleError::Silent(index));
    }
    Ok(Decoded {
        samples: down.finish(frames),
        seconds,
    })
}

/// Box low-pass and linear interpolation down (or up) to [`RATE`], one
/// input sample at a time; pitch and energy analysis need nothing finer.
/// Gives exactly what the whole-signal version in the tests gives.
struct Downsampler {
    /// Identity at [`RATE`] (or an unknown rate).
    identity: bool,
    width: usize,
    step: f64,
    window: std::collections::VecDeque<f32>,
    acc: f32,
    seen: usize,
    previous: Option<f32>,
    out: Vec<f32>,
}

impl Downsampler {
    fn new(rate: usize) -> Self {
        Self {
            identity: rate == RATE || rate == 0,
            width: (rate / RATE).max(1),
            step: rate as f64 / RATE as f64,
            window: std::collections::VecDeque::new(),
            acc: 0.0,
            seen: 0,
            previous: None,
            out: Vec::new(),
        }
    }

    fn push(&mut self, x: f32) {
        if self.identity {
            self.out.push(x);
            return;
        }
        let smoothed = if self.width > 1 {
            self.acc += x;
            self.window.push_back(x);
            if self.window.len() > self.width {
                self.acc -= self.window.pop_front().unwrap_or(0.0);
            }
            self.acc / self.width.min(self.seen + 1) as f32
        } else {
            x
        };
        let index = self.seen;
        self.seen += 1;
        // Every output between the previous input and this one.
        if let Some(a) = self.previous {
            loop {
                let pos = self.out.len() as f64 * self.step;
                if pos as usize + 1 != index {
                    break;
                }
                let frac = (pos - (pos as usize) as f64) as f32;
                self.out.push(a + (smoothed - a) * frac);
            }
        }
        self.previous = Some(smoothed);
    }

    /// The samples at [`RATE`] of an input of `len` samples.
    fn finish(mut self, len: usize) -> Vec<f32> {
        if self.identity {
            return self.out;
        }
        let n = (len as f64 / self.step) as usize;
        self.out.truncate(n);
        // Past the last input the interpolation holds its value.
        let last = self.previous.unwrap_or(0.0);
        self.out.resize(n, last);
        self.out
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn frame_rms(x: &[f32], start: usize, len: usize) -> f32 {
    let end = (start + len).min(x.len());
    if end <= start {
        return 0.0;
    }
    (x[start..end].iter().map(|s| s * s).sum::<f32>() / (end - start) as f32).sqrt()
}

/// The pitch of one frame, if it is voiced.
fn frame_pitch(x: &[f32], start: usize) -> Option<f64> {
    if start + WINDOW + MAX_LAG + 1 > x.len() {
        return None;
    }
    let a = &x[start..start + WINDOW];
    let ea: f32 = a.iter().map(|s| s * s).sum();
    let mut scores = [0f32; MAX_LAG + 2];
    for (lag, score) in scores
        .iter_mut()
        .enumerate()
        .take(MAX_LAG + 2)
        .skip(MIN_LAG)
    {
        let b = &x[start + lag..start + lag + WINDOW];
        let (mut dot, mut eb) = (0f32, 0f32);
        for (p, q) in a.iter().zip(b) {
            dot += p * q;
            eb += q * q;
        }
        *score = dot / (ea * eb).sqrt().max(1e-9);
    }
    let (best_lag, best) = (MIN_LAG..=MAX_LAG)
        .map(|l| (l, scores[l]))
        .fold((0, f32::MIN), |m, c| if c.1 > m.1 { c } else { m });
    if best < 0.6 {
        return None;
    }
    // The first peak close to the best one: avoids octave-down errors.
    let lag = (MIN_LAG..=best_lag)
        .find(|&l| {
            scores[l] >= 0.9 * best
                && scores[l] >= scores[l - 1]
                && scores[l] >= scores[(l + 1).min(MAX_LAG + 1)]
        })
        .unwrap_or(best_lag);
    let (l, c, r) = (scores[lag - 1], scores[lag], scores[lag + 1]);
    let denom = l - 2.0 * c + r;
    let shift = if denom.abs() > 1e-9 {
        (0.5 * (l - r) / denom).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    Some(RATE as f64 / (lag as f64 + f64::from(shift)))
}

/// Measures pitch and rate over all samples.
pub fn analyse(samples: &[Decoded]) -> Result<Analysis, SampleError> {
    let total_seconds: f64 = samples.iter().map(|d| d.seconds).sum();
    if total_seconds > MAX_TOTAL_SECONDS {
        return Err(SampleError::TooLong(total_seconds));
    }
    let mut pitches = Vec::new();
    let mut peaks = 0usize;
    let mut active_frames = 0usize;
    let frames_total: usize = samples.iter().map(|d| d.samples.len() / HOP).sum();
    let stride = frames_total.div_ceil(MAX_PITCH_FRAMES).max(1);
    for d in samples {
        let x = &d.samples;
        let env: Vec<f32> = (0..x.len() / HOP)
            .map(|f| frame_rms(x, f * HOP, 2 * HOP))
            .collect();
        let smooth: Vec<f32> = (0..env.len())
            .map(|i| {
                let (lo, hi) = (i.saturating_sub(2), (i + 3).min(env.len()));
                env[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
            })
            .collect();
        let mut sorted: Vec<f64> = smooth.iter().map(|&e| f64::from(e)).collect();
        sorted.sort_by(f64::total_cmp);
        let loud = percentile(&sorted, 0.95) as f32;
        if loud <= 0.0 {
            continue;
        }
        let active = |e: f32| e > 0.1 * loud;
        active_frames += smooth.iter().filter(|&&e| active(e)).count();
        const NEAR: usize = 9;
        for i in 0..smooth.len() {
            let (lo, hi) = (i.saturating_sub(NEAR), (i + NEAR + 1).min(smooth.len()));
            let e = smooth[i];
            if e > 0.25 * loud && smooth[lo..hi].iter().all(|&o| o <= e) {
                // Ties on a plateau count once: only the first maximum.
                if smooth[lo..i].iter().all(|&o| o < e) {
                    peaks += 1;
                }
            }
        }
        for f in (0..env.len()).step_by(stride) {
            if active(smooth[f])
                && let Some(p) = frame_pitch(x, f * HOP)
            {
                pitches.push(p);
            }
        }
    }
    if pitches.len() < 10 || active_frames == 0 {
        return Err(SampleError::NoSpeech);
    }
    pitches.sort_by(f64::total_cmp);
    let speech_seconds = active_frames as f64 * HOP as f64 / RATE as f64;
    Ok(Analysis {
        pitch_median_hz: percentile(&pitches, 0.5),
        pitch_p10_hz: percentile(&pitches, 0.1),
        pitch_p90_hz: percentile(&pitches, 0.9),
        syllables_per_second: peaks as f64 / speech_seconds,
        speech_seconds,
        total_seconds,
    })
}

// Calibration, measured with this module on espeak-ng 1.51 `en-us` output
// of one paragraph (`espeak-ng -v en-us+m3 -p P -s S`): median Hz at pitch
// parameter 0, 50, 100 for the male (`m3`) and female (`f2`) variants
// (not linear: espeak-ng's pitch scale is closer to exponential), syllables
// per second detected at 100, 175 and 300 wpm (peaks merge at high rates),
// and the p10–p90 spread in semitones at range 50.
const MALE: (&str, [(f64, f64); 3]) = ("m3", [(73.0, 0.0), (105.0, 50.0), (173.0, 100.0)]);
const FEMALE: (&str, [(f64, f64); 3]) = ("f2", [(129.0, 0.0), (195.0, 50.0), (322.0, 100.0)]);
const RATE_CURVE: [(f64, f64); 3] = [(3.32, 100.0), (4.64, 175.0), (5.68, 300.0)];
const SPREAD_AT_RANGE_50: f64 = 4.5;

/// Piecewise-linear through `points` (sorted by x), extended at both ends.
fn interpolate(points: &[(f64, f64); 3], x: f64) -> f64 {
    let i = if x < points[1].0 { 0 } else { 1 };
    let ((x0, y0), (x1, y1)) = (points[i], points[i + 1]);
    y0 + (x - x0) * (y1 - y0) / (x1 - x0)
}

/// espeak-ng parameters that follow the measured speaker.
pub fn engine_voice(analysis: &Analysis, espeak_voice: &str) -> EngineVoice {
    let median = analysis.pitch_median_hz;
    // Below the female variant's middle the male one fits better.
    let (variant, curve) = if median < 150.0 { MALE } else { FEMALE };
    let pitch = interpolate(&curve, median).round().clamp(0.0, 100.0) as u8;
    let spread = 12.0 * (analysis.pitch_p90_hz / analysis.pitch_p10_hz.max(1.0)).log2();
    let range = (50.0 * spread / SPREAD_AT_RANGE_50)
        .round()
        .clamp(0.0, 100.0) as u8;
    let rate = interpolate(&RATE_CURVE, analysis.syllables_per_second)
        .round()
        .clamp(80.0, 450.0) as u16;
    EngineVoice {
        espeak_voice: espeak_voice.to_owned(),
        variant: Some(variant.to_owned()),
        pitch,
        range,
        rate,
        piper: None,
        kokoro: None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// The whole-signal resampler the streaming one replaces.
    fn to_analysis_rate(x: &[f32], rate: usize) -> Vec<f32> {
        if rate == RATE || rate == 0 {
            return x.to_vec();
        }
        let width = (rate / RATE).max(1);
        let smoothed: Vec<f32> = if width > 1 {
            let mut acc = 0f32;
            let mut out = Vec::with_capacity(x.len());
            for i in 0..x.len() {
                acc += x[i];
                if i >= width {
                    acc -= x[i - width];
                }
                out.push(acc / width.min(i + 1) as f32);
            }
            out
        } else {
            x.to_vec()
        };
        let step = rate as f64 / RATE as f64;
        let n = (x.len() as f64 / step) as usize;
        (0..n)
            .map(|i| {
                let pos = i as f64 * step;
                let j = pos as usize;
                let frac = (pos - j as f64) as f32;
                let a = smoothed[j];
                let b = smoothed.get(j + 1).copied().unwrap_or(a);
                a + (b - a) * frac
            })
            .collect()
    }

    #[test]
    fn streaming_resampling_equals_the_whole_signal_version() {
        for rate in [8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 6_000] {
            for len in [0usize, 1, 2, 5, 10, 999, 4_801] {
                let x: Vec<f32> = (0..len)
                    .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                    .collect();
                let mut d = Downsampler::new(rate);
                for &v in &x {
                    d.push(v);
                }
                assert_eq!(
                    d.finish(len),
                    to_analysis_rate(&x, rate),
                    "rate {rate}, len {len}"
                );
            }
        }
    }

    /// A vowel-like tone at `f0` with syllable-rate amplitude modulation.
    pub fn voiced_wav(f0: f64, syllables_per_second: f64, seconds: f64, rate: u32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        let n = (seconds * f64::from(rate)) as usize;
        for i in 0..n {
            let t = i as f64 / f64::from(rate);
            let env = (std::f64::consts::PI * syllables_per_second * t)
                .sin()
                .abs()
                .powi(2);
            let tone: f64 = (1..=6)
                .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                .sum();
            w.write_sample((tone * env * 8000.0) as i16).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn pitch_and_rate_of_a_synthetic_voice_are_measured() {
        let bytes = voiced_wav(120.0, 4.0, 6.0, 44_100);
        let a = analyse(&[decode(0, &bytes).unwrap()]).unwrap();
        assert!((a.pitch_median_hz - 120.0).abs() < 4.0, "{a:?}");
        assert!((a.syllables_per_second - 4.0).abs() < 1.0, "{a:?}");
        let high = analyse(&[decode(0, &voiced_wav(260.0, 4.0, 6.0, 16_000)).unwrap()]).unwrap();
        assert!((high.pitch_median_hz - 260.0).abs() < 8.0, "{high:?}");
        assert!(engine_voice(&high, "en-us").variant.as_deref() == Some("f2"));
        assert!(engine_voice(&a, "en-us").variant.as_deref() == Some("m3"));
    }

    #[test]
    fn calibration_points_map_back_to_their_parameters() {
        let a = |median: f64, sps: f64| Analysis {
            pitch_median_hz: median,
            pitch_p10_hz: 100.0,
            pitch_p90_hz: 100.0 * 2f64.powf(4.5 / 12.0),
            syllables_per_second: sps,
            speech_seconds: 10.0,
            total_seconds: 12.0,
        };
        let v = engine_voice(&a(105.0, 4.64), "en-us");
        assert_eq!(
            (v.variant.as_deref(), v.pitch, v.range, v.rate),
            (Some("m3"), 50, 50, 175)
        );
        let v = engine_voice(&a(322.0, 5.68), "en-us");
        assert_eq!(
            (v.variant.as_deref(), v.pitch, v.rate),
            (Some("f2"), 100, 300)
        );
        assert_eq!(engine_voice(&a(40.0, 1.0), "en-us").pitch, 0);
    }

    #[test]
    fn bad_samples_are_refused_with_their_codes() {
        assert_eq!(decode(0, b"").unwrap_err().code(), "empty_sample");
        assert_eq!(
            decode(1, b"ID3 this is an mp3").unwrap_err().code(),
            "invalid_sample"
        );
        let silent = voiced_wav(120.0, 4.0, 1.0, 16_000)
            .iter()
            .enumerate()
            .map(|(i, &b)| if i < 44 { b } else { 0 })
            .collect::<Vec<u8>>();
        assert_eq!(decode(2, &silent).unwrap_err().code(), "silent_sample");
        let long = Decoded {
            samples: vec![0.0; 10],
            seconds: 301.0,
        };
        assert_eq!(analyse(&[long]).unwrap_err().code(), "samples_too_long");
    }
}
