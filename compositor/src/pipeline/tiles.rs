//! The tiles that are not tracks: a participant's placeholder (a solid colour with the name),
//! empty slots, and where every tile goes in a scene.

use anyhow::{Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Input, Owner, Pipeline};
use crate::layout::Rect;
use crate::room::{Scene, ZORDER_BACKGROUND, ZORDER_EMPTY_SLOT, ZORDER_PLACEHOLDER};

/// Colours (ARGB) of the tiles.
const PLACEHOLDER_ARGB: u32 = 0xff2b_2f3a;
const EMPTY_SLOT_ARGB: u32 = 0xff1a_1c22;
/// Frame rate of tiles that never change. A live source's latency is one frame: 100 ms stays
/// below the 200 ms the mixers plan for their inputs (`input_latency_ns`), so a still tile
/// adds no delay to the output.
const STILL_FPS: u32 = 10;
/// Resolution placeholders are drawn at (the compositor pad scales them to the tile).
const PLACEHOLDER_W: i32 = 480;
const PLACEHOLDER_H: i32 = 270;

/// Escape a display name for textoverlay, which renders Pango markup.
pub fn markup_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Pipeline {
    fn video_src_caps(&self, width: i32, height: i32, fps: u32) -> gst::Caps {
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", width)
            .field("height", height)
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build()
    }

    /// A live solid-colour source, optionally with a centred label. The background runs at
    /// the output frame rate (it drives the mixer); `still` tiles (placeholders, empty slots)
    /// at [`STILL_FPS`]: the mixer shows each frame until the next, and drawing and labelling
    /// them at 30 fps cost about 0.006 of a core per tile for a picture that never changes.
    fn solid_bin(&mut self, name: &str, argb: u32, w: i32, h: i32, label: Option<&str>, still: bool) -> Result<gst::Bin> {
        let bin = gst::Bin::with_name(name);
        let src = gst::ElementFactory::make("videotestsrc")
            .property("is-live", true)
            .property_from_str("pattern", "solid-color")
            .property("foreground-color", argb)
            .build()?;
        let fps = if still { STILL_FPS.min(self.settings.fps) } else { self.settings.fps };
        let caps = gst::ElementFactory::make("capsfilter").property("caps", self.video_src_caps(w, h, fps)).build()?;
        bin.add_many([&src, &caps])?;
        src.link(&caps)?;
        let mut last = caps;
        if let Some(label) = label {
            let text = gst::ElementFactory::make("textoverlay")
                .property("text", markup_escape(label))
                .property_from_str("valignment", "center")
                .property_from_str("halignment", "center")
                .property("font-desc", "Sans Bold 26")
                .property("shaded-background", false)
                .build()
                .context("creating textoverlay (package gstreamer1.0-x)")?;
            bin.add(&text)?;
            last.link(&text)?;
            last = text;
        }
        let pad = last.static_pad("src").unwrap();
        bin.add_pad(&gst::GhostPad::with_target(&pad)?)?;
        Ok(bin)
    }

    pub(super) fn add_background(&mut self) -> Result<()> {
        // Transparent, tiny: it only guarantees the compositor always has a live input.
        let bin = self.solid_bin("background", 0xff00_0000, 16, 16, None, false)?;
        let pad = self.attach(&bin, &self.vmix.clone(), &[("zorder", ZORDER_BACKGROUND.to_value()), ("alpha", 0.0f64.to_value())])?;
        let _ = pad;
        Ok(())
    }

    pub(super) fn add_silence(&mut self) -> Result<()> {
        let bin = gst::Bin::with_name("silence");
        let src = gst::ElementFactory::make("audiotestsrc")
            .property("is-live", true)
            .property_from_str("wave", "silence")
            .property("samplesperbuffer", 960i32)
            .build()?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("format", "F32LE")
                    .field("layout", "interleaved")
                    .field("rate", 48_000i32)
                    .field("channels", 2i32)
                    .build(),
            )
            .build()?;
        bin.add_many([&src, &caps])?;
        src.link(&caps)?;
        bin.add_pad(&gst::GhostPad::with_target(&caps.static_pad("src").unwrap())?)?;
        self.attach(&bin, &self.amix.clone(), &[])?;
        Ok(())
    }

    pub fn add_placeholder(&mut self, participant_id: &str, name: &str) -> Result<()> {
        let bin_name = self.fresh_name("ph");
        let bin = self.solid_bin(&bin_name, PLACEHOLDER_ARGB, PLACEHOLDER_W, PLACEHOLDER_H, Some(name), true)?;
        self.owners.insert(bin_name, Owner::Placeholder(participant_id.to_string()));
        let pad = self.attach(&bin, &self.vmix.clone(), &[("zorder", ZORDER_PLACEHOLDER.to_value()), ("alpha", 0.0f64.to_value())])?;
        pad.set_property_from_str("sizing-policy", "keep-aspect-ratio");
        pad.set_property("converter-config", super::inputs::scaler_config());
        self.placeholders.insert(participant_id.to_string(), Input::tile(bin, self.vmix.clone(), pad));
        Ok(())
    }

    pub fn remove_placeholder(&mut self, participant_id: &str) {
        if let Some(input) = self.placeholders.remove(participant_id) {
            self.detach(input);
        }
    }

    fn place(pad: &gst::Pad, rect: Rect, zorder: u32) {
        pad.set_property("xpos", rect.x);
        pad.set_property("ypos", rect.y);
        pad.set_property("width", rect.width);
        pad.set_property("height", rect.height);
        pad.set_property("zorder", zorder);
        pad.set_property("alpha", 1.0f64);
    }

    /// Move every tile to where `scene` says; grow the pool of empty-slot tiles as needed
    /// and hide (alpha 0) the ones not used.
    pub fn apply_scene(&mut self, scene: &Scene) -> Result<()> {
        while self.empties.len() < scene.empty_slots.len() {
            let name = self.fresh_name("empty");
            let bin = self.solid_bin(&name, EMPTY_SLOT_ARGB, 32, 18, None, true)?;
            let pad = self.attach(&bin, &self.vmix.clone(), &[("zorder", ZORDER_EMPTY_SLOT.to_value()), ("alpha", 0.0f64.to_value())])?;
            self.empties.push(Input::tile(bin, self.vmix.clone(), pad));
        }
        for (i, input) in self.empties.iter().enumerate() {
            match scene.empty_slots.get(i) {
                Some(rect) => Self::place(&input.mixer_pad, *rect, ZORDER_EMPTY_SLOT),
                None => input.mixer_pad.set_property("alpha", 0.0f64),
            }
        }
        for (pid, rect) in &scene.placeholders {
            if let Some(input) = self.placeholders.get(pid) {
                Self::place(&input.mixer_pad, *rect, ZORDER_PLACEHOLDER);
            }
        }
        for (tid, rect, zorder) in &scene.videos {
            if let Some(input) = self.tracks.get(tid) {
                Self::place(&input.mixer_pad, *rect, *zorder);
            }
        }
        // Video inputs the scene leaves out (a camera turned off) are hidden, not removed:
        // turning the camera back on shows them at once.
        for (tid, input) in &self.tracks {
            if input.mixer == self.vmix && !scene.videos.iter().any(|(v, _, _)| v == tid) {
                input.mixer_pad.set_property("alpha", 0.0f64);
            }
        }
        Ok(())
    }
}
