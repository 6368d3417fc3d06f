//! The libespeak-ng C API, declared by hand (no bindgen: it would need
//! libclang) and wrapped in [`Espeak`], the one safe handle of a process.
//!
//! Invariant: libespeak-ng keeps its voice, parameters and callback in
//! process-wide globals and crashes when two threads synthesise at once
//! (docs/engines.md), so an [`Espeak`] exists at most once per process, is not
//! `Send`/`Sync`, and is only used by the engine process's single thread.
//!
//! Invariant: libespeak-ng never opens a file or URI named by the text.
//! Without a URI callback its SSML `<audio src>` loads any path on disk
//! (and runs `sox` through a shell on files that are not 22 kHz WAV);
//! [`Espeak::init`] installs a callback that refuses every URI before the
//! first synthesis, so even SSML that slipped past `shared::ssml` speaks
//! the element's fallback text at most.

use std::ffi::{CString, c_char, c_int, c_short, c_uint, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::protocol::{EngineRequest, WordMark};
use super::{Engine, EngineRefusal, Synthesis};

// Values of speak_lib.h (espeak-ng 1.51).
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const POS_CHARACTER: c_int = 1;
const ESPEAK_CHARS_UTF8: c_uint = 1;
const ESPEAK_SSML: c_uint = 0x10;
const ESPEAK_RATE: c_int = 1;
const ESPEAK_PITCH: c_int = 3;
const ESPEAK_RANGE: c_int = 4;
const EVENT_LIST_TERMINATED: c_int = 0;
const EVENT_WORD: c_int = 1;
const EE_OK: c_int = 0;
const EE_NOT_FOUND: c_int = 2;

/// espeakRATE_MINIMUM / espeakRATE_MAXIMUM: words per minute.
pub const RATE_MIN: u16 = 80;
pub const RATE_MAX: u16 = 450;

/// `espeak_EVENT`: the callback receives an array of them, ended by one of
/// kind `espeakEVENT_LIST_TERMINATED`. We read the word events.
#[repr(C)]
struct EspeakEvent {
    kind: c_int,
    unique_identifier: c_uint,
    text_position: c_int,
    length: c_int,
    audio_position: c_int,
    sample: c_int,
    user_data: *mut c_void,
    /// A union of `int`, `const char*` and `char[8]`: 8 bytes, pointer-aligned.
    id: *const c_void,
}

/// `espeak_VOICE` of speak_lib.h (the fields a lookup by language uses).
#[repr(C)]
struct EspeakVoice {
    name: *const c_char,
    languages: *const c_char,
    identifier: *const c_char,
    gender: u8,
    age: u8,
    variant: u8,
    xx1: u8,
    score: c_int,
    spare: *mut c_void,
}

/// Selects `voice` by its name or file name (`en-us` finds `gmw/en-US`),
/// else, when `by_language`, by language (`en-gb` and `fr-fr` are
/// languages of the files `gmw/en` and `roa/fr`, which `espeak-ng -v`
/// finds but `espeak_SetVoiceByName` does not). Only phonemisation asks for
/// the fallback, with the catalog's language tags: a lookup by properties
/// always picks *some* voice, so a synthesis must not use it, or an
/// unknown voice would speak instead of being refused.
///
/// # Safety
/// Only from the thread that owns the process's [`Espeak`].
unsafe fn set_voice(voice: &std::ffi::CStr, by_language: bool) -> c_int {
    // SAFETY: the caller is the only user of the engine; the strings
    // outlive the calls.
    unsafe {
        match espeak_SetVoiceByName(voice.as_ptr()) {
            EE_NOT_FOUND if by_language => {
                let by_language = EspeakVoice {
                    name: std::ptr::null(),
                    languages: voice.as_ptr(),
                    identifier: std::ptr::null(),
                    gender: 0,
                    age: 0,
                    variant: 0,
                    xx1: 0,
                    score: 0,
                    spare: std::ptr::null_mut(),
                };
                espeak_SetVoiceByProperties(&by_language)
            }
            code => code,
        }
    }
}

type SynthCallback = unsafe extern "C" fn(*mut c_short, c_int, *mut EspeakEvent) -> c_int;
/// `int (*UriCallback)(int type, const char *uri, const char *base)`:
/// 1 = do not play this URI (speak_lib.h).
type UriCallback = unsafe extern "C" fn(c_int, *const c_char, *const c_char) -> c_int;

#[link(name = "espeak-ng")]
unsafe extern "C" {
    fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    fn espeak_SetSynthCallback(cb: SynthCallback);
    fn espeak_SetUriCallback(cb: Option<UriCallback>);
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_SetVoiceByProperties(voice: *const EspeakVoice) -> c_int;
    fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
    fn espeak_Synchronize() -> c_int;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}

/// `phonememode` bit 1: IPA as UTF-8 (what `espeak-ng --ipa` prints).
const PHONEMES_IPA: c_int = 0x02;
/// `phonememode` bit 7: put the character of bits 8–23 between the letters
/// of a multi-letter phoneme (a tie), here U+0361 as phonemizer asks for it.
const PHONEMES_TIE: c_int = 0x80 | (0x0361 << 8);

/// Samples of the synthesis in progress. A process-wide buffer mirrors
/// libespeak-ng's own global state: the callback has no other reliable
/// context (the terminating call may carry no `user_data`).
static SAMPLES: Mutex<Vec<i16>> = Mutex::new(Vec::new());
/// Word events of the synthesis in progress: (text position, length, ms).
static WORDS: Mutex<Vec<(i32, i32, i32)>> = Mutex::new(Vec::new());
static INITIALISED: AtomicBool = AtomicBool::new(false);
/// The most samples the synthesis in progress may produce; past it the
/// callback stops espeak-ng and sets [`OVER_LIMIT`].
static SAMPLE_LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);
static OVER_LIMIT: AtomicBool = AtomicBool::new(false);

/// Refuses every URI (`<audio src>` and anything else espeak-ng would
/// fetch): returning 1 tells espeak-ng not to play it.
unsafe extern "C" fn refuse_every_uri(
    _kind: c_int,
    _uri: *const c_char,
    _base: *const c_char,
) -> c_int {
    1
}

/// Appends each block of audio; returning 0 asks espeak-ng to go on.
unsafe extern "C" fn collect_samples(
    wav: *mut c_short,
    count: c_int,
    events: *mut EspeakEvent,
) -> c_int {
    if !events.is_null() {
        let mut words = WORDS.lock().unwrap_or_else(|p| p.into_inner());
        let mut event = events;
        // SAFETY: espeak-ng passes an array ended by a LIST_TERMINATED
        // event, valid for the duration of this call.
        unsafe {
            while (*event).kind != EVENT_LIST_TERMINATED {
                if (*event).kind == EVENT_WORD {
                    let e = &*event;
                    words.push((e.text_position, e.length, e.audio_position));
                }
                event = event.add(1);
            }
        }
    }
    if wav.is_null() || count <= 0 {
        return 0;
    }
    // SAFETY: espeak-ng hands us `count` valid samples at `wav` for the
    // duration of this call.
    let block = unsafe { std::slice::from_raw_parts(wav, count as usize) };
    let mut buf = SAMPLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if (buf.len() + block.len()) as u64 > SAMPLE_LIMIT.load(Ordering::Relaxed) {
        OVER_LIMIT.store(true, Ordering::Relaxed);
        // Non-zero aborts the synthesis.
        return 1;
    }
    buf.extend_from_slice(block);
    0
}

/// Why a synthesis did not produce audio.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("espeak-ng has no voice {0:?}")]
    VoiceNotFound(String),
    #[error("invalid voice name {0:?}")]
    BadVoiceName(String),
    #[error("the text contains a NUL character")]
    NulInText,
    #[error("espeak-ng refused the text (error {0})")]
    Refused(i32),
    #[error("the audio passed its ceiling of {0} samples")]
    TooLong(u64),
}

/// The initialised engine of this process.
pub struct Espeak {
    sample_rate: u32,
    /// The voice the last phonemisation set (setting one costs ~0.4 ms, and
    /// Kokoro phonemises piece by piece); a synthesis forgets it, since its
    /// SSML may switch voices.
    phoneme_voice: Option<String>,
    /// Not `Send`/`Sync`: see the module invariant.
    _single_thread: std::marker::PhantomData<*const ()>,
}

impl Espeak {
    /// Initialises libespeak-ng for in-memory synthesis; `None` if it is
    /// already initialised in this process or cannot find its data.
    pub fn init() -> Option<Self> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return None;
        }
        // SAFETY: called once per process (guarded above) before any other
        // espeak function; a NULL path means the default data directory.
        let rate = unsafe { espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), 0) };
        if rate <= 0 {
            return None;
        }
        // SAFETY: the callbacks are plain functions valid for the whole
        // process, installed before any synthesis.
        unsafe {
            espeak_SetSynthCallback(collect_samples);
            espeak_SetUriCallback(Some(refuse_every_uri));
        }
        Some(Self {
            sample_rate: rate as u32,
            phoneme_voice: None,
            _single_thread: std::marker::PhantomData,
        })
    }

    /// What espeak_Initialize reported (22,050 Hz for espeak-ng 1.51).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Renders `text` with `voice` (`name` or `name+variant`) into mono s16,
    /// with the word events.
    pub fn synthesize(
        &mut self,
        text: &str,
        ssml: bool,
        voice: &str,
        rate: u16,
        pitch: u8,
        range: u8,
    ) -> Result<Synthesis, SynthError> {
        self.synthesize_at_most(text, ssml, voice, rate, pitch, range, None)
    }

    /// [`Espeak::synthesize`], stopping with [`SynthError::TooLong`] once
    /// the audio passes `max_samples`.
    #[allow(clippy::too_many_arguments)]
    pub fn synthesize_at_most(
        &mut self,
        text: &str,
        ssml: bool,
        voice: &str,
        rate: u16,
        pitch: u8,
        range: u8,
        max_samples: Option<u64>,
    ) -> Result<Synthesis, SynthError> {
        self.phoneme_voice = None;
        let c_voice =
            CString::new(voice).map_err(|_| SynthError::BadVoiceName(voice.to_owned()))?;
        let c_text = CString::new(text).map_err(|_| SynthError::NulInText)?;
        // SAFETY: `&mut self` proves we are the only user of the global
        // engine; the strings outlive the calls.
        unsafe {
            match set_voice(&c_voice, false) {
                EE_OK => {}
                EE_NOT_FOUND => return Err(SynthError::VoiceNotFound(voice.to_owned())),
                code => return Err(SynthError::Refused(code)),
            }
            espeak_SetParameter(ESPEAK_RATE, i32::from(rate.clamp(RATE_MIN, RATE_MAX)), 0);
            espeak_SetParameter(ESPEAK_PITCH, i32::from(pitch.min(100)), 0);
            espeak_SetParameter(ESPEAK_RANGE, i32::from(range.min(100)), 0);
        }
        SAMPLES.lock().unwrap_or_else(|p| p.into_inner()).clear();
        WORDS.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let limit = max_samples.unwrap_or(u64::MAX);
        SAMPLE_LIMIT.store(limit, Ordering::Relaxed);
        OVER_LIMIT.store(false, Ordering::Relaxed);
        let flags = ESPEAK_CHARS_UTF8 | if ssml { ESPEAK_SSML } else { 0 };
        let bytes = c_text.as_bytes_with_nul();
        // SAFETY: as above; in synchronous mode espeak_Synth calls the
        // callback on this thread and returns when the text is rendered.
        let code = unsafe {
            let code = espeak_Synth(
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                POS_CHARACTER,
                0,
                flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            espeak_Synchronize();
            code
        };
        let samples = std::mem::take(&mut *SAMPLES.lock().unwrap_or_else(|p| p.into_inner()));
        let events = std::mem::take(&mut *WORDS.lock().unwrap_or_else(|p| p.into_inner()));
        if OVER_LIMIT.swap(false, Ordering::Relaxed) {
            return Err(SynthError::TooLong(limit));
        }
        if code != EE_OK {
            return Err(SynthError::Refused(code));
        }
        let rate = u64::from(self.sample_rate);
        let words = events
            .into_iter()
            .filter(|&(pos, len, _)| pos > 0 && len > 0)
            .map(|(pos, len, ms)| WordMark {
                // espeak-ng counts characters from 1.
                char_start: (pos - 1) as u32,
                char_len: len as u32,
                sample: (ms.max(0) as u64 * rate / 1000).min(samples.len() as u64),
                end: None,
            })
            .collect();
        Ok(Synthesis {
            samples,
            words,
            sample_rate: self.sample_rate,
        })
    }
}

impl Espeak {
    /// The IPA phonemes of `text` in `voice`, as `espeak-ng -q --ipa`
    /// prints them: one call per clause (the library stops at each clause
    /// end and drops its punctuation), clauses joined by a space.
    pub fn phonemes(&mut self, voice: &str, text: &str) -> Result<String, SynthError> {
        self.phonemes_in_mode(voice, text, PHONEMES_IPA)
    }

    /// [`Espeak::phonemes`] with a tie (`^`) between the letters of each
    /// multi-letter phoneme (`a^ɪ`), as phonemizer's `tie='^'` gives them
    /// (what misaki and Kokoro expect).
    pub fn phonemes_tied(&mut self, voice: &str, text: &str) -> Result<String, SynthError> {
        Ok(self
            .phonemes_in_mode(voice, text, PHONEMES_IPA | PHONEMES_TIE)?
            .replace('\u{361}', "^"))
    }

    fn phonemes_in_mode(
        &mut self,
        voice: &str,
        text: &str,
        mode: c_int,
    ) -> Result<String, SynthError> {
        let c_voice =
            CString::new(voice).map_err(|_| SynthError::BadVoiceName(voice.to_owned()))?;
        let c_text = CString::new(text).map_err(|_| SynthError::NulInText)?;
        let mut out = String::new();
        // SAFETY: `&mut self` proves we are the only user of the global
        // engine; `c_text` outlives the loop, and the library advances
        // `ptr` within it (or sets it to NULL at the end). The returned
        // string is the library's buffer, copied before the next call.
        unsafe {
            if self.phoneme_voice.as_deref() != Some(voice) {
                self.phoneme_voice = None;
                match set_voice(&c_voice, true) {
                    EE_OK => {}
                    EE_NOT_FOUND => return Err(SynthError::VoiceNotFound(voice.to_owned())),
                    code => return Err(SynthError::Refused(code)),
                }
                self.phoneme_voice = Some(voice.to_owned());
            }
            let mut ptr: *const c_void = c_text.as_ptr().cast();
            while !ptr.is_null() && *ptr.cast::<u8>() != 0 {
                let before = ptr;
                let phonemes = espeak_TextToPhonemes(&mut ptr, ESPEAK_CHARS_UTF8 as c_int, mode);
                if !phonemes.is_null() {
                    let clause = std::ffi::CStr::from_ptr(phonemes).to_string_lossy();
                    let clause = clause.trim();
                    if !clause.is_empty() {
                        if !out.is_empty() {
                            out.push(' ');
                        }
                        out.push_str(clause);
                    }
                }
                if ptr == before {
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl Engine for Espeak {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn synthesize(&mut self, request: &EngineRequest) -> Result<Synthesis, EngineRefusal> {
        Espeak::synthesize_at_most(
            self,
            &request.text,
            request.ssml,
            &request.voice,
            request.rate,
            request.pitch,
            request.range,
            request.max_samples,
        )
        .map_err(|e| {
            let code = match e {
                SynthError::VoiceNotFound(_) | SynthError::BadVoiceName(_) => "voice_unavailable",
                SynthError::NulInText => "invalid_text",
                SynthError::Refused(_) => "synthesis_failed",
                SynthError::TooLong(_) => "audio_too_long",
            };
            EngineRefusal {
                code: code.to_owned(),
                message: e.to_string(),
            }
        })
    }
}
