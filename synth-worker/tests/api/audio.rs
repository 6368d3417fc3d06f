//! Formats, presets, long text and word timestamps on real engine
//! processes: every format decodes back (hound, symphonia, libopus) to
//! audio of the stored duration; every preset renders speech; alignment is
//! in order and spans the audio.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;

use shared::alignment::Alignment;
use shared::amqp::Outcome;
use shared::settings::Settings;
use synth_worker::engine::{EnginePool, EngineRequest};
use synth_worker::{State, handle};

use crate::helpers::*;

async fn ctx_with(engines: usize) -> (Settings, State) {
    let s = tokio::task::spawn_blocking(move || settings(engines))
        .await
        .unwrap();
    let ctx = State::build(&s).await.expect("worker context");
    (s, ctx)
}

/// Decodes with symphonia (MP3, FLAC): (rate, mono samples).
fn symphonia_decode(bytes: Vec<u8>, extension: &str) -> (u32, Vec<i16>) {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let mut format = symphonia::default::get_probe()
        .format(&hint, stream, &options, &MetadataOptions::default())
        .unwrap_or_else(|e| panic!("{extension}: {e}"))
        .format;
    let track = format.default_track().unwrap();
    let (track_id, params) = (track.id, track.codec_params.clone());
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .unwrap();
    let mut samples = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(symphonia::core::errors::Error::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                break;
            }
            Err(e) => panic!("{e}"),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet).unwrap();
        let mut buf = SampleBuffer::<i16>::new(decoded.capacity() as u64, *decoded.spec());
        buf.copy_interleaved_ref(decoded);
        samples.extend_from_slice(buf.samples());
    }
    (params.sample_rate.unwrap(), samples)
}

/// Decodes Ogg Opus with libopus, trimmed by pre-skip and final granule.
fn opus_decode(bytes: Vec<u8>) -> (u32, u32, Vec<i16>) {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let head = reader.read_packet().unwrap().unwrap().data;
    assert!(head.starts_with(b"OpusHead"), "not Ogg Opus");
    let pre_skip = usize::from(u16::from_le_bytes([head[10], head[11]]));
    let input_rate = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    assert!(
        reader
            .read_packet()
            .unwrap()
            .unwrap()
            .data
            .starts_with(b"OpusTags")
    );
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut out = vec![0i16; 5760];
    let (mut samples, mut granule) = (Vec::new(), 0);
    while let Some(packet) = reader.read_packet().unwrap() {
        let n = decoder.decode(&packet.data, &mut out, false).unwrap();
        samples.extend_from_slice(&out[..n]);
        granule = packet.absgp_page();
    }
    let end = granule as usize;
    assert!(
        end <= samples.len(),
        "granule {end} past {} samples",
        samples.len()
    );
    (input_rate, 48_000, samples[pre_skip..end].to_vec())
}

/// (decoded rate, samples) of a stored file.
fn decode(format: &str, bytes: Vec<u8>, pcm_rate: u32) -> (u32, Vec<i16>) {
    match format {
        "wav" => {
            let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
            let rate = reader.spec().sample_rate;
            (
                rate,
                reader.into_samples::<i16>().map(Result::unwrap).collect(),
            )
        }
        "pcm" => (
            pcm_rate,
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        "ogg" => {
            let (_, rate, samples) = opus_decode(bytes);
            (rate, samples)
        }
        other => symphonia_decode(bytes, other),
    }
}

#[tokio::test]
async fn every_format_decodes_back_to_audio_of_the_stored_duration_at_the_asked_rate() {
    let (settings, ctx) = ctx_with(2).await;
    let ws = insert_workspace(&ctx.db, 1000).await;
    let cases: [(&str, Option<i32>, u32, i64); 10] = [
        // (format, sampleRate asked, rate expected, tolerance in ms)
        ("wav", None, 22_050, 1),
        ("wav", Some(16_000), 16_000, 1),
        ("pcm", Some(8_000), 8_000, 1),
        ("flac", None, 22_050, 1),
        ("flac", Some(48_000), 48_000, 1),
        // MP3 may keep up to a frame of encoder padding (≤ 26 ms here).
        ("mp3", None, 22_050, 60),
        ("mp3", Some(44_100), 44_100, 60),
        ("mp3", Some(8_000), 8_000, 150),
        ("ogg", None, 48_000, 2),
        ("ogg", Some(16_000), 48_000, 2),
    ];
    let mut ids = Vec::new();
    for (format, rate, _, _) in cases {
        let mut new = new_generation(ws, SEED);
        new.format = format.to_owned();
        new.sample_rate = rate;
        ids.push(insert_generation(&ctx.db, new).await.id);
    }
    let outcomes =
        futures_util::future::join_all(ids.iter().map(|&id| handle(&ctx, job(id, false)))).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack));

    for ((format, asked, expected_rate, tolerance), id) in cases.into_iter().zip(ids) {
        let row = find(&ctx.db, id).await;
        assert_eq!(
            row.status, "completed",
            "{format} {asked:?}: {:?}",
            row.error
        );
        let key = row.storage_key.unwrap();
        assert!(key.ends_with(&format!(".{format}")), "{key}");
        let bytes = std::fs::read(settings.storage.root.join(&key)).unwrap();
        let (rate, samples) = decode(format, bytes, asked.map_or(22_050, |r| r as u32));
        assert_eq!(rate, expected_rate, "{format} {asked:?}");
        let ms = samples.len() as i64 * 1000 / i64::from(rate);
        let stored = row.duration_ms.unwrap();
        assert!(
            (ms - stored).abs() <= tolerance,
            "{format} {asked:?}: decoded {ms} ms, durationMs {stored}"
        );
        assert!(rms(&samples) > 300.0, "{format} {asked:?}: silence");
    }
}

#[tokio::test]
async fn every_espeak_preset_renders_speech_and_presets_of_a_language_differ() {
    let engines = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = EnginePool::start(engine_program(), engines).await.unwrap();
    // Neural presets (Piper, Kokoro) are rendered by their own tests.
    let presets: Vec<_> = shared::voices::presets()
        .iter()
        .filter(|p| p.voice.engine() == shared::voices::EngineKind::Espeak)
        .collect();

    let renders = futures_util::future::join_all(presets.iter().map(|&p| {
        let pool = pool.clone();
        async move {
            let request = EngineRequest {
                // Digits are spoken in almost every language; the few
                // without number rules (he, cv, chr, nog, tk) read the word.
                text: "123 hello".to_owned(),
                ssml: false,
                voice: p.voice.espeak_name(),
                rate: p.voice.rate,
                pitch: p.voice.pitch,
                range: p.voice.range,
                piper: None,
                kokoro: None,
                max_samples: None,
            };
            (p, pool.render(&request).await)
        }
    }))
    .await;

    let mut by_language: HashMap<&str, HashSet<Vec<i16>>> = HashMap::new();
    let mut count: HashMap<&str, usize> = HashMap::new();
    let failed: Vec<String> = renders
        .iter()
        .filter_map(|(p, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("{} {}: {e}", p.id, p.voice.espeak_name()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} presets fail: {failed:#?}",
        failed.len()
    );
    for (preset, result) in renders {
        let audio = result.unwrap();
        let level = rms(&audio.samples);
        assert!(
            audio.samples.len() > 22_050 / 4 && level > 300.0,
            "{} ({}) is not speech: {} samples, rms {level}",
            preset.id,
            preset.voice.espeak_name(),
            audio.samples.len()
        );
        by_language
            .entry(preset.language)
            .or_default()
            .insert(audio.samples);
        *count.entry(preset.language).or_default() += 1;
    }
    for (language, n) in count {
        assert_eq!(
            by_language[language].len(),
            n,
            "two {language} presets sound the same"
        );
    }
}

#[tokio::test]
async fn long_text_is_rendered_in_chunks_with_monotone_word_timestamps_spanning_the_audio() {
    let (settings, ctx) = ctx_with(2).await;
    let ws = insert_workspace(&ctx.db, 1000).await;
    let text = [SEED; 60].join(" ");
    assert!(text.chars().count() > 3 * synth_worker::text::CHUNK_CHARS);
    let g = insert_generation(&ctx.db, new_generation(ws, &text)).await;

    assert_eq!(handle(&ctx, job(g.id, false)).await, Outcome::Ack);

    let row = find(&ctx.db, g.id).await;
    assert_eq!(row.status, "completed", "{:?}", row.error);
    let duration = row.duration_ms.unwrap() as u64;
    let key = shared::alignment::alignment_key(
        shared::ids::WorkspaceId(ws),
        shared::ids::GenerationId(g.id),
    );
    let json = std::fs::read(settings.storage.root.join(key.as_ref())).unwrap();
    let alignment: Alignment = serde_json::from_slice(&json).unwrap();
    assert_eq!(alignment.duration_ms, duration);
    let expected_words = text.split_whitespace().count();
    assert!(
        alignment.words.len() >= expected_words * 9 / 10 && alignment.words.len() <= expected_words,
        "{} words for {expected_words}",
        alignment.words.len()
    );
    let chars: Vec<char> = text.chars().collect();
    for pair in alignment.words.windows(2) {
        assert!(pair[0].start_ms <= pair[0].end_ms, "{:?}", pair[0]);
        assert!(
            pair[0].end_ms <= pair[1].start_ms,
            "{:?} overlaps {:?}",
            pair[0],
            pair[1]
        );
    }
    for w in &alignment.words {
        let source: String = chars[w.char_start as usize..w.char_end as usize]
            .iter()
            .collect();
        assert_eq!(source.trim(), w.word);
    }
    let (first, last) = (&alignment.words[0], alignment.words.last().unwrap());
    assert_eq!(first.word, "Welcome");
    assert!(first.start_ms < 500, "{first:?}");
    assert_eq!(last.word, "speaks.");
    assert!(
        last.end_ms <= duration && last.end_ms + 1_000 >= duration,
        "{last:?} of {duration} ms"
    );
}
