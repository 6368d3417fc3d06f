//! FLAC with `flacenc` (pure Rust): 16-bit mono, 4096-sample blocks,
//! single-threaded (the worker already renders one job per core).

use flacenc::bitsink::ByteSink;
use flacenc::component::BitRepr;
use flacenc::error::Verify;

use super::EncodeError;

pub fn flac(samples: &[i16], sample_rate: u32) -> Result<Vec<u8>, EncodeError> {
    let e = |detail: String| EncodeError::Codec(format!("FLAC: {detail}"));
    let mut config = flacenc::config::Encoder::default();
    config.multithread = false;
    let config = config
        .into_verified()
        .map_err(|(_, x)| e(format!("{x:?}")))?;
    let wide: Vec<i32> = samples.iter().map(|&s| i32::from(s)).collect();
    let source = flacenc::source::MemSource::from_samples(&wide, 1, 16, sample_rate as usize);
    let block = config.block_size;
    let mut stream = flacenc::encode_with_fixed_block_size(&config, source, block)
        .map_err(|x| e(format!("{x:?}")))?;
    // flacenc counts the short last block in the minimum block size; the
    // format excludes it, and decoders (symphonia) then expect variable
    // blocking and cannot sync. A fixed-blocksize stream says min = max.
    if stream.frame_count() > 1 {
        stream
            .stream_info_mut()
            .set_block_sizes(block, block)
            .map_err(|x| e(format!("{x:?}")))?;
    }
    let mut sink = ByteSink::new();
    stream.write(&mut sink).map_err(|x| e(format!("{x:?}")))?;
    Ok(sink.as_slice().to_vec())
}
