//! The lossy encoders: MP3 with LAME (`mp3lame-encoder`, bundled LAME,
//! 64 kbit/s CBR mono, with the LAME/Info tag so players can trim the
//! encoder's padding) and Opus (`opus`, libopus) in an Ogg container
//! (RFC 7845: `OpusHead`, `OpusTags`, 20 ms packets, granule positions at
//! 48 kHz, the final granule trimming the padding of the last frame).

use std::mem::MaybeUninit;

use mp3lame_encoder::{Bitrate, Builder, FlushGap, MonoPcm, Quality};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::EncodeError;

pub fn mp3(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let e = |what: &str, detail: String| EncodeError::Codec(format!("MP3 {what}: {detail}"));
    let mut builder = Builder::new().ok_or_else(|| e("init", "LAME failed to start".into()))?;
    builder
        .set_num_channels(1)
        .map_err(|x| e("channels", x.to_string()))?;
    builder
        .set_sample_rate(sample_rate)
        .map_err(|x| e("rate", x.to_string()))?;
    builder
        .set_brate(Bitrate::Kbps64)
        .map_err(|x| e("bitrate", x.to_string()))?;
    builder
        .set_quality(Quality::Good)
        .map_err(|x| e("quality", x.to_string()))?;
    let mut encoder = builder.build().map_err(|x| e("build", x.to_string()))?;
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(samples.len()));
    encoder
        .encode_to_vec(MonoPcm(samples), &mut out)
        .map_err(|x| e("encode", x.to_string()))?;
    out.reserve(7200);
    encoder
        .flush_to_vec::<FlushGap>(&mut out)
        .map_err(|x| e("flush", x.to_string()))?;
    // LAME reserved the first frame for the Info tag; fill it in now.
    let tag_size = encoder.lame_tag_size();
    if tag_size > 0 && tag_size <= out.len() {
        let mut tag = vec![MaybeUninit::<u8>::uninit(); tag_size];
        if let Some(n) = encoder.lame_tag_encode(&mut tag) {
            for (dst, src) in out.iter_mut().zip(&tag[..n.get()]) {
                // SAFETY: LAME wrote the first `n` bytes of `tag`.
                *dst = unsafe { src.assume_init() };
            }
        }
    }
    Ok(out)
}

/// Samples libopus delays its output by at 48 kHz (2.5 ms + 4 ms; the same
/// for every input rate and application but restricted-low-delay).
const OPUS_PRE_SKIP: u16 = 312;
const OPUS_BITRATE: i32 = 32_000;

pub fn ogg_opus(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let e = |what: &str, detail: String| EncodeError::Codec(format!("Opus {what}: {detail}"));
    let mut encoder =
        opus::Encoder::new(sample_rate, opus::Channels::Mono, opus::Application::Audio)
            .map_err(|x| e("init", x.to_string()))?;
    encoder
        .set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))
        .map_err(|x| e("bitrate", x.to_string()))?;
    // Complexity 5 of 10: about twice as fast, no audible loss for speech.
    encoder
        .set_complexity(5)
        .map_err(|x| e("complexity", x.to_string()))?;
    let frame = sample_rate as usize / 50;
    let per_frame_48k = 960u64;
    let total_48k = samples.len() as u64 * 48_000 / u64::from(sample_rate);
    let serial = 0x766f_6963;
    let mut out = Vec::with_capacity(samples.len() / 4 + 1024);
    {
        let mut writer = PacketWriter::new(&mut out);
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1);
        head.push(1);
        head.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&sample_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0);
        let io = |x: std::io::Error| e("container", x.to_string());
        writer
            .write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        let vendor = b"voiceprod";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        writer
            .write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        // The decoder drops the first OPUS_PRE_SKIP samples (the encoder's
        // delay), so the packets must cover pre-skip + the audio: without
        // the extra frame, audio ending within 6.5 ms of a frame boundary
        // would have its final granule past the decoded samples (and its
        // last milliseconds cut).
        let pre_skip_in = (usize::from(OPUS_PRE_SKIP) * sample_rate as usize).div_ceil(48_000);
        let frames = (samples.len() + pre_skip_in).div_ceil(frame).max(1);
        let mut pcm = vec![0i16; frame];
        let mut packet = vec![0u8; 4000];
        for i in 0..frames {
            let chunk =
                &samples[(i * frame).min(samples.len())..((i + 1) * frame).min(samples.len())];
            pcm[..chunk.len()].copy_from_slice(chunk);
            pcm[chunk.len()..].fill(0);
            let n = encoder
                .encode(&pcm, &mut packet)
                .map_err(|x| e("encode", x.to_string()))?;
            let last = i + 1 == frames;
            let granule = if last {
                u64::from(OPUS_PRE_SKIP) + total_48k
            } else {
                u64::from(OPUS_PRE_SKIP) + (i as u64 + 1) * per_frame_48k
            };
            let end = if last {
                PacketWriteEndInfo::EndStream
            } else if (i + 1) % 50 == 0 {
                // About one page a second keeps seeking fine-grained.
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            writer
                .write_packet(packet[..n].to_vec(), serial, end, granule)
                .map_err(io)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packets_cover_the_pre_skip_and_the_final_granule_at_every_length() {
        // Lengths around a frame boundary (960 samples at 48 kHz).
        for n in [9_600 - 400, 9_600 - 200, 9_600 - 1, 9_600, 9_601] {
            let samples: Vec<i16> = (0..n).map(|i| ((i % 97) * 100) as i16).collect();
            let bytes = ogg_opus(&samples, 48_000).unwrap();
            let mut reader = ogg::PacketReader::new(std::io::Cursor::new(bytes));
            let (mut packets, mut granule) = (0u64, 0u64);
            while let Some(p) = reader.read_packet().unwrap() {
                packets += 1;
                granule = p.absgp_page();
            }
            let decoded = (packets - 2) * 960;
            assert_eq!(granule, u64::from(OPUS_PRE_SKIP) + n as u64);
            assert!(granule <= decoded, "{n}: granule {granule} past {decoded}");
        }
    }
}
