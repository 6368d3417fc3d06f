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
    let mut stream = Mp3Stream::new(sample_rate)?;
    let mut out = stream.push(samples)?;
    stream.finish(&mut out)?;
    Ok(out)
}

fn mp3_error(what: &str, detail: impl std::fmt::Display) -> EncodeError {
    EncodeError::Codec(format!("MP3 {what}: {detail}"))
}

/// LAME fed piece by piece: the same bytes as one call with all samples,
/// given out as LAME completes frames.
pub struct Mp3Stream {
    encoder: mp3lame_encoder::Encoder,
}

impl Mp3Stream {
    pub fn new(sample_rate: u32) -> Result<Self, EncodeError> {
        let mut builder =
            Builder::new().ok_or_else(|| mp3_error("init", "LAME failed to start"))?;
        builder
            .set_num_channels(1)
            .map_err(|x| mp3_error("channels", x))?;
        builder
            .set_sample_rate(sample_rate)
            .map_err(|x| mp3_error("rate", x))?;
        builder
            .set_brate(Bitrate::Kbps64)
            .map_err(|x| mp3_error("bitrate", x))?;
        builder
            .set_quality(Quality::Good)
            .map_err(|x| mp3_error("quality", x))?;
        let encoder = builder.build().map_err(|x| mp3_error("build", x))?;
        Ok(Self { encoder })
    }

    /// The frames `samples` completed.
    pub fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(samples.len()));
        self.encoder
            .encode_to_vec(MonoPcm(samples), &mut out)
            .map_err(|x| mp3_error("encode", x))?;
        Ok(out)
    }

    /// Appends the last frames to `whole` (every byte pushed so far, in
    /// order) and fills in the LAME/Info tag in its first frame, which
    /// LAME reserved for it: a streamed copy has that frame blank (players
    /// then do not trim the encoder's padding, ~50 ms).
    pub fn finish(mut self, whole: &mut Vec<u8>) -> Result<Vec<u8>, EncodeError> {
        let mut tail = Vec::with_capacity(7200);
        self.encoder
            .flush_to_vec::<FlushGap>(&mut tail)
            .map_err(|x| mp3_error("flush", x))?;
        whole.extend_from_slice(&tail);
        let tag_size = self.encoder.lame_tag_size();
        if tag_size > 0 && tag_size <= whole.len() {
            let mut tag = vec![MaybeUninit::<u8>::uninit(); tag_size];
            if let Some(n) = self.encoder.lame_tag_encode(&mut tag) {
                for (dst, src) in whole.iter_mut().zip(&tag[..n.get()]) {
                    // SAFETY: LAME wrote the first `n` bytes of `tag`.
                    *dst = unsafe { src.assume_init() };
                }
            }
        }
        Ok(tail)
    }
}

/// Samples libopus delays its output by at 48 kHz (2.5 ms + 4 ms; the same
/// for every input rate and application but restricted-low-delay).
const OPUS_PRE_SKIP: u16 = 312;
const OPUS_BITRATE: i32 = 32_000;
const OPUS_SERIAL: u32 = 0x766f_6963;
/// Packets per Ogg page: about one page a second keeps seeking fine-grained.
const PACKETS_PER_PAGE: u64 = 50;

pub fn ogg_opus(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let mut stream = OggOpusStream::new(sample_rate)?;
    let mut out = stream.push(samples)?;
    out.extend(stream.finish()?);
    Ok(out)
}

fn opus_error(what: &str, detail: impl std::fmt::Display) -> EncodeError {
    EncodeError::Codec(format!("Opus {what}: {detail}"))
}

/// Opus in Ogg fed piece by piece: whole 20 ms frames are encoded as
/// samples arrive, and each push ends an Ogg page so its audio can be sent
/// at once; the final granule (known only at the end) trims the padding.
pub struct OggOpusStream {
    encoder: opus::Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    sample_rate: u32,
    frame: usize,
    /// Samples not yet a whole frame.
    pending: Vec<i16>,
    /// The last encoded packet, written once we know how it ends a page.
    held: Option<(Vec<u8>, u64)>,
    packets: u64,
    samples_in: u64,
}

impl OggOpusStream {
    pub fn new(sample_rate: u32) -> Result<Self, EncodeError> {
        let mut encoder =
            opus::Encoder::new(sample_rate, opus::Channels::Mono, opus::Application::Audio)
                .map_err(|x| opus_error("init", x))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))
            .map_err(|x| opus_error("bitrate", x))?;
        // Complexity 5 of 10: about twice as fast, no audible loss for speech.
        encoder
            .set_complexity(5)
            .map_err(|x| opus_error("complexity", x))?;
        let mut writer = PacketWriter::new(Vec::new());
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1);
        head.push(1);
        head.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&sample_rate.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0);
        let io = |x: std::io::Error| opus_error("container", x);
        writer
            .write_packet(head, OPUS_SERIAL, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        let vendor = b"voiceprod";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        writer
            .write_packet(tags, OPUS_SERIAL, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        Ok(Self {
            encoder,
            writer,
            sample_rate,
            frame: sample_rate as usize / 50,
            pending: Vec::new(),
            held: None,
            packets: 0,
            samples_in: 0,
        })
    }

    /// Encodes one frame (`pcm`, zero-padded) and writes the packet held
    /// before it.
    fn encode_frame(&mut self, pcm: &[i16]) -> Result<(), EncodeError> {
        let mut frame = vec![0i16; self.frame];
        frame[..pcm.len()].copy_from_slice(pcm);
        let mut packet = vec![0u8; 4000];
        let n = self
            .encoder
            .encode(&frame, &mut packet)
            .map_err(|x| opus_error("encode", x))?;
        packet.truncate(n);
        self.packets += 1;
        let granule = u64::from(OPUS_PRE_SKIP) + self.packets * 960;
        if let Some(held) = self.held.replace((packet, granule)) {
            let end = if (self.packets - 1).is_multiple_of(PACKETS_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.write(held, end)?;
        }
        Ok(())
    }

    fn write(
        &mut self,
        (packet, granule): (Vec<u8>, u64),
        end: PacketWriteEndInfo,
    ) -> Result<(), EncodeError> {
        self.writer
            .write_packet(packet, OPUS_SERIAL, end, granule)
            .map_err(|x| opus_error("container", x))
    }

    /// The pages `samples` completed (the headers with the first push).
    pub fn push(&mut self, samples: &[i16]) -> Result<Vec<u8>, EncodeError> {
        self.samples_in += samples.len() as u64;
        self.pending.extend_from_slice(samples);
        let whole = self.pending.len() / self.frame * self.frame;
        let pending = std::mem::take(&mut self.pending);
        for frame in pending[..whole].chunks(self.frame) {
            self.encode_frame(frame)?;
        }
        self.pending = pending[whole..].to_vec();
        // End a page here, so this audio can go out now.
        if let Some(held) = self.held.take() {
            self.write(held, PacketWriteEndInfo::EndPage)?;
        }
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    /// The last pages. The decoder drops the first OPUS_PRE_SKIP samples
    /// (the encoder's delay), so the packets must cover pre-skip + the
    /// audio: without the extra samples, audio ending within 6.5 ms of a
    /// frame boundary would have its final granule past the decoded
    /// samples (and its last milliseconds cut).
    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        let rate = self.sample_rate as usize;
        let pre_skip_in = (usize::from(OPUS_PRE_SKIP) * rate).div_ceil(48_000);
        let mut rest = std::mem::take(&mut self.pending);
        rest.resize(rest.len() + pre_skip_in, 0);
        for frame in rest.chunks(self.frame) {
            self.encode_frame(frame)?;
        }
        let total_48k = self.samples_in * 48_000 / u64::from(self.sample_rate);
        if let Some((packet, _)) = self.held.take() {
            let granule = u64::from(OPUS_PRE_SKIP) + total_48k;
            self.write((packet, granule), PacketWriteEndInfo::EndStream)?;
        }
        Ok(std::mem::take(self.writer.inner_mut()))
    }
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
