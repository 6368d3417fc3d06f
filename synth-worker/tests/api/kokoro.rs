//! Kokoro voices on real engine processes with ONNX Runtime and the Kokoro
//! files (`deploy/fetch-models` installs them): misaki's phonemes for
//! American and British English, every Kokoro language speaking, long
//! text, word timestamps from the model's durations, blends, speed, SSML
//! breaks, and the errors for a missing pack and missing files.
//!
//! The voices are built here (`EngineVoice` with `kokoro` set), so the
//! engine is tested apart from the catalog.

use shared::alignment::Alignment;
use shared::formats::AudioFormat;
use shared::voices::{EngineVoice, KokoroPack};
use synth_worker::State;
use synth_worker::engine::misaki;
use synth_worker::render::{self, JobError, Produced};

use crate::helpers::*;

/// Sentences and what misaki's own code (`misaki/espeak.py`,
/// `EspeakFallback(british=False)` and `(british=True)`, on phonemizer
/// 3.4.0 with this libespeak-ng 1.51) makes of them.
const MISAKI: &[(&str, &str, &str)] = &[
    (
        "Hello, world! How are you today?",
        "həlˈO, wˈɜɹld! hˌW ɑɹ ju tədˈA?",
        "həlˈQ, wˈɜːld! hˌW ɑː juː tədˈA?",
    ),
    (
        "The quick brown fox jumps over the lazy dog.",
        "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ.",
        "ðə kwˈɪk bɹˈWn fˈɒks ʤˈʌmps ˌQvə ðə lˈAzi dˈɒɡ.",
    ),
    (
        "I bought 12 eggs; the price was $3.50 — not bad.",
        "I bˈɔt twˈɛlv ˈɛɡz; ðə pɹˈIs wʌz dˈɑləɹ θɹˈi pYnt fˈIv zˈiəɹO — nˌɑt bˈæd.",
        "I bˈɔːt twˈɛlv ˈɛɡz; ðə pɹˈIs wɒz dˈɒlə θɹˈiː pYnt fˈIv zˈiəɹQ — nˌɒt bˈad.",
    ),
    (
        "She said: \"Don't worry, it's only a little button.\"",
        "ʃi sˈɛd: \"dˈOnt wˈʌɹi, ɪts ˈOnli ə lˈɪTᵊl bˈʌtn.\"",
        "ʃiː sˈɛd: \"dˈQnt wˈʌɹi, ɪts ˈQnli ə lˈɪtᵊl bˈʌtən.\"",
    ),
    (
        "Our church choir sings in the square near the river.",
        "ˌWəɹ ʧˈɜɹʧ kwˈIəɹ sˈɪŋz ɪnðə skwˈɛɹ nˌɪɹ ðə ɹˈɪvəɹ.",
        "ˌWə ʧˈɜːʧ kwˈIə sˈɪŋz ɪnðə skwˈAə nˌiə ðə ɹˈɪvə.",
    ),
    (
        "Wait... is this really (truly) the end?",
        "wˈAt... ɪz ðɪs ɹˈiəli (tɹˈuli) ðɪ ˈɛnd?",
        "wˈAt... ɪz ðɪs ɹˈiəlɪ (tɹˈuːli) ðɪ ˈɛnd?",
    ),
    (
        "The loch was huge, and the boy enjoyed it.",
        "ðə lˈɑk wʌz hjˈuʤ, ænd ðə bˈY ɛnʤˈYd ɪt.",
        "ðə lˈɒk wɒz hjˈuːʤ, and ðə bˈY ɛnʤˈYd ɪt.",
    ),
    (
        "Thirty-three thousand people visited Paris in 2019.",
        "θˈɜɹTiθɹˈi θˈWzənd pˈipᵊl vˈɪzɪTᵻd pˈæɹɪs ɪn tˈu θˈWzənd nˈIntin.",
        "θˈɜːtiθɹˈiː θˈWzənd pˈiːpᵊl vˈɪzɪtɪd pˈaɹɪs ɪn tˈuː θˈWzənd ən nˈIntiːn.",
    ),
];

#[test]
fn kokoro_phonemes_match_misaki_for_american_and_british_english() {
    for &(text, us, gb) in MISAKI {
        for (voice, want) in [("en-us", us), ("en-gb", gb)] {
            let got = with_espeak(move |e| misaki::phonemize(e, voice, text).unwrap());
            assert_eq!(got.text, want, "{voice}: {text}");
            // Every word of the text has a start, in order, inside the string.
            let words = text
                .split_whitespace()
                .filter(|w| w.chars().any(char::is_alphanumeric))
                .count();
            assert_eq!(got.words.len(), words, "{voice}: {text}");
            assert!(got.words.windows(2).all(|w| w[0].phoneme <= w[1].phoneme));
        }
    }
}

fn voice(espeak: &str, packs: &[(&str, f32)]) -> EngineVoice {
    let packs = packs
        .iter()
        .map(|&(name, weight)| KokoroPack {
            name: name.to_owned(),
            weight,
        })
        .collect();
    EngineVoice::kokoro(espeak, packs)
}

fn row(text: &str, speed: f32, ssml: bool) -> shared::models::Generation {
    shared::models::Generation {
        text_type: if ssml { "ssml" } else { "text" }.to_owned(),
        ..shared::models::Generation::unsaved("voice_kokoro_test", text, "wav", speed)
    }
}

async fn render_with(
    ctx: &State,
    voice: &EngineVoice,
    text: &str,
    speed: f32,
    ssml: bool,
) -> Result<Produced, JobError> {
    let plan = render::plan(&row(text, speed, ssml), voice, &ctx.voices_dir)?;
    assert!(plan.kokoro && !plan.neural);
    assert_eq!(plan.format, AudioFormat::Wav);
    assert_eq!(plan.sample_rate, 24_000);
    render::produce(&ctx.kokoro, &plan).await
}

async fn render_ok(ctx: &State, voice: &EngineVoice, text: &str) -> Produced {
    render_with(ctx, voice, text, 1.0, false)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn samples(produced: &Produced) -> Vec<i16> {
    let reader = hound::WavReader::new(std::io::Cursor::new(&produced.bytes)).unwrap();
    assert_eq!(reader.spec().sample_rate, 24_000);
    reader.into_samples::<i16>().map(Result::unwrap).collect()
}

/// Starts strictly increasing, each word ends after it starts, all inside
/// the audio, and the words are the text's words in order.
fn assert_words(alignment: &Alignment, text: &str) {
    let want: Vec<&str> = text.split_whitespace().collect();
    let got: Vec<&str> = alignment.words.iter().map(|w| w.word.as_str()).collect();
    assert_eq!(got, want);
    for pair in alignment.words.windows(2) {
        assert!(
            pair[0].start_ms < pair[1].start_ms,
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
        assert!(pair[0].end_ms <= pair[1].start_ms);
    }
    for w in &alignment.words {
        assert!(
            w.start_ms < w.end_ms && w.end_ms <= alignment.duration_ms,
            "{w:?}"
        );
    }
}

#[tokio::test]
async fn each_kokoro_language_speaks_and_its_length_fits_the_text() {
    let (_, ctx) = ctx().await;
    let cases = [
        (
            "en-us",
            "af_heart",
            "The weather is lovely today, so we walked to the park.",
        ),
        (
            "en-gb",
            "bf_emma",
            "The weather is lovely today, so we walked to the park.",
        ),
        (
            "es",
            "ef_dora",
            "Hoy hace muy buen tiempo, así que fuimos al parque.",
        ),
        (
            "fr-fr",
            "ff_siwis",
            "Il fait très beau aujourd'hui, alors nous sommes allés au parc.",
        ),
        ("hi", "hf_alpha", "आज मौसम बहुत अच्छा है, इसलिए हम पार्क गए।"),
        (
            "it",
            "if_sara",
            "Oggi il tempo è molto bello, così siamo andati al parco.",
        ),
        (
            "pt-br",
            "pf_dora",
            "Hoje o tempo está muito bom, então fomos ao parque.",
        ),
    ];
    for (espeak, pack, text) in cases {
        let produced = render_ok(&ctx, &voice(espeak, &[(pack, 1.0)]), text).await;
        let ms = produced.duration_ms;
        // 40–60 characters: 2 to 7 seconds of natural speech.
        assert!(
            (2_000..=7_000).contains(&ms),
            "{espeak}: {ms} ms for {text}"
        );
        let audio = samples(&produced);
        let loud = audio.chunks(2_400).filter(|c| rms(c) > 500.0).count();
        assert!(
            loud * 10 >= audio.len() / 2_400 * 4,
            "{espeak}: only {loud} of {} 100 ms windows are voiced",
            audio.len() / 2_400
        );
    }
}

#[tokio::test]
async fn kokoro_word_timestamps_come_from_the_durations_in_order() {
    let (_, ctx) = ctx().await;
    let text = "In the morning, 23 people visited the old lighthouse. Nobody expected them!";
    let produced = render_ok(&ctx, &voice("en-us", &[("af_heart", 1.0)]), text).await;
    assert_words(&produced.alignment, text);
    // Each word sits over speech, not over the silence around it.
    let audio = samples(&produced);
    for w in &produced.alignment.words {
        let (s, e) = (w.start_ms as usize * 24, w.end_ms as usize * 24);
        assert!(
            rms(&audio[s..e.min(audio.len())]) > 300.0,
            "{w:?} is silent"
        );
    }
    // "lighthouse." ends the first sentence: the next word starts after a pause.
    let words = &produced.alignment.words;
    let gap = words[9].start_ms - words[8].end_ms;
    assert!(gap >= 150, "{gap} ms between the sentences");
}

#[tokio::test]
async fn a_10000_character_text_renders_on_kokoro_with_every_word() {
    let (_, ctx) = ctx().await;
    let paragraph = "The old lighthouse keeper climbed the winding stairs every evening, carrying a lantern and a small notebook. He wrote down the color of the sky, the direction of the wind, and the names of the ships that passed. ";
    let text = paragraph.repeat(10_000 / paragraph.len() + 1)[..10_000].to_owned();
    let text = text[..text.rfind(' ').unwrap()].to_owned();
    let produced = render_with(
        &ctx,
        &voice("en-us", &[("am_michael", 1.0)]),
        &text,
        1.5,
        false,
    )
    .await
    .unwrap();
    let secs = produced.duration_ms as f64 / 1000.0;
    // ~1,650 words at 1.5× speed: 2.5 to 6 words a second.
    assert!((275.0..=660.0).contains(&secs), "{secs:.0} s");
    assert_words(&produced.alignment, &text);
}

#[tokio::test]
async fn a_blend_of_two_packs_renders_and_differs_from_each_pack() {
    let (_, ctx) = ctx().await;
    let text = "A blend of two voices.";
    let bella = samples(&render_ok(&ctx, &voice("en-us", &[("af_bella", 1.0)]), text).await);
    let sky = samples(&render_ok(&ctx, &voice("en-us", &[("af_sky", 1.0)]), text).await);
    let blend = render_ok(
        &ctx,
        &voice("en-us", &[("af_bella", 0.5), ("af_sky", 0.5)]),
        text,
    )
    .await;
    assert_words(&blend.alignment, text);
    let blend = samples(&blend);
    assert!(rms(&blend) > 500.0);
    assert_ne!(blend, bella);
    assert_ne!(blend, sky);
}

#[tokio::test]
async fn speed_and_ssml_breaks_change_the_length_on_kokoro() {
    let (_, ctx) = ctx().await;
    let v = voice("en-gb", &[("bm_george", 1.0)]);
    let text = "Speed changes the length of the audio.";
    let one = render_with(&ctx, &v, text, 1.0, false)
        .await
        .unwrap()
        .duration_ms;
    let fast = render_with(&ctx, &v, text, 2.0, false)
        .await
        .unwrap()
        .duration_ms;
    let ratio = fast as f64 / one as f64;
    assert!(
        (0.4..=0.7).contains(&ratio),
        "speed 2.0: {ratio:.2}× the audio"
    );
    // Both split at a break (each side its own inference, with the model's
    // own edge silence), so the difference is the breaks'.
    let plain = render_with(
        &ctx,
        &v,
        r#"<speak>Hello there.<break time="100ms"/>Goodbye now.</speak>"#,
        1.0,
        true,
    )
    .await
    .unwrap()
    .duration_ms;
    let paused = render_with(
        &ctx,
        &v,
        r#"<speak>Hello there.<break time="1500ms"/>Goodbye now.</speak>"#,
        1.0,
        true,
    )
    .await
    .unwrap()
    .duration_ms;
    let added = paused - plain;
    assert!(
        (1_250..=1_550).contains(&added),
        "1.5 s of break instead of 0.1 s added {added} ms"
    );
}

#[tokio::test]
async fn a_missing_or_hostile_pack_is_a_clear_permanent_error() {
    let (_, ctx) = ctx().await;
    for (pack, says) in [
        ("af_nobody", "af_nobody is not installed"),
        ("../../etc/passwd", "is not a Kokoro voice pack name"),
    ] {
        let error = render_with(
            &ctx,
            &voice("en-us", &[("af_heart", 0.5), (pack, 0.5)]),
            "Hi.",
            1.0,
            false,
        )
        .await
        .expect_err("no such pack");
        match error {
            JobError::Permanent { code, message } => {
                assert_eq!(code, "voice_unavailable");
                assert!(message.contains(says), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The engine process is fine afterwards.
    render_ok(&ctx, &voice("en-us", &[("af_heart", 1.0)]), "Still here.").await;
    assert_eq!(ctx.kokoro.alive(), ctx.kokoro.size());
}

#[tokio::test]
async fn a_worker_without_the_kokoro_files_refuses_to_start_and_names_the_fetch_command() {
    let mut s = tokio::task::spawn_blocking(|| settings(1)).await.unwrap();
    let empty = std::env::temp_dir().join(format!("no-kokoro-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&empty).unwrap();
    s.kokoro.dir = empty.clone();
    let message = format!(
        "{:#}",
        State::build(&s)
            .await
            .err()
            .expect("the worker must not start")
    );
    assert!(message.contains("deploy/fetch-models"), "{message}");
    assert!(message.contains("kokoro-v1.0.int8.onnx"), "{message}");
    assert!(message.contains("vocab.json"), "{message}");
    assert!(message.contains(&empty.display().to_string()), "{message}");
}
