//! Band-limited resampling of the engine's mono s16 output with `rubato`'s
//! FFT resampler (fixed ratio, anti-aliased), for rates other than the
//! engine's own: Opus needs 8/12/16/24/48 kHz, and customers may ask for a
//! `sampleRate`. The resampler's delay is removed and the length is exactly
//! `round(n × to / from)`, so durations and word timestamps stay true.

use rubato::{FftFixedInOut, Resampler};

/// Input frames per FFT block.
const CHUNK: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[error("resampling failed: {0}")]
pub struct ResampleError(String);

pub fn resample(samples: &[i16], from: u32, to: u32) -> Result<Vec<i16>, ResampleError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| ResampleError(e.to_string());
    let mut resampler =
        FftFixedInOut::<f32>::new(from as usize, to as usize, CHUNK, 1).map_err(|e| err(&e))?;
    let expected = (samples.len() as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
    let delay = resampler.output_delay();
    let mut out: Vec<f32> = Vec::with_capacity(expected + delay + CHUNK * 4);
    let mut output = resampler.output_buffer_allocate(true);
    let scale = 1.0 / 32768.0;
    let mut input = vec![0f32; resampler.input_frames_max()];
    let mut position = 0;
    // Feed the signal, then zeros until the delayed tail is out too.
    while out.len() < expected + delay {
        let need = resampler.input_frames_next();
        input.resize(need, 0.0);
        for (i, slot) in input.iter_mut().enumerate() {
            *slot = samples
                .get(position + i)
                .map_or(0.0, |&s| f32::from(s) * scale);
        }
        position += need;
        let (_, written) = resampler
            .process_into_buffer(&[&input[..need]], &mut output, None)
            .map_err(|e| err(&e))?;
        out.extend_from_slice(&output[0][..written]);
    }
    Ok(out[delay..delay + expected]
        .iter()
        .map(|&s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (10_000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn length_is_exact_and_a_tone_keeps_its_frequency_and_level() {
        let input = sine(440.0, 22_050, 22_050);
        let out = resample(&input, 22_050, 48_000).unwrap();
        assert_eq!(out.len(), 48_000);
        // Zero crossings of a 440 Hz tone over one second: ~880.
        let crossings = out.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        assert!((870..=890).contains(&crossings), "{crossings}");
        let peak = out[1000..47_000]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((9_500..=10_500).contains(&peak), "{peak}");
        // Aligned in time: the delay was removed. A one-sample shift of this
        // tone would give a mean error of ~800; both delays are whole
        // output samples, so up to half a sample remains.
        let back = resample(&out, 48_000, 22_050).unwrap();
        let err: f64 = input[2000..20_000]
            .iter()
            .zip(&back[2000..20_000])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
            .sum::<f64>()
            / 18_000.0;
        assert!(err < 600.0, "mean error {err}");
    }
}
