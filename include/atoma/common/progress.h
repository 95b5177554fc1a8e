// Progress bars for long work in the command-line programs (`atoma-cli model synth` and
// `model digest`, the benchmarks in bench/): one line redrawn in place,
//
//   digest demo [#############                 ]  43%  210.4/489.1 MB
//
// drawn only when the stream is a terminal, so logs, pipes and CI output never fill with carriage
// returns. The daemon never draws one: it logs.
//
// Thread-safety: none; one thread drives a bar (the progress callbacks of SynthesizeModel and
// ComputeModelDigest run on their caller's thread). Errors: none; a failed write to the terminal
// is ignored, progress being cosmetic. Header-only, so the benchmarks can use it without linking
// anything more.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

namespace atoma {

class ProgressBar {
 public:
  // Draws on stderr when stderr is a terminal; otherwise every call is a no-op.
  explicit ProgressBar(std::string label)
      : ProgressBar(std::move(label), stderr, ::isatty(::fileno(stderr)) == 1) {}
  // Draws on `out` when `enabled` (tests pass a memory stream).
  ProgressBar(std::string label, std::FILE* out, bool enabled)
      : label_(std::move(label)), out_(out), enabled_(enabled) {}
  ~ProgressBar() { Finish(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool enabled() const { return enabled_; }

  // `fraction` is clamped to [0, 1]; `note` follows the percentage (a phase name, a byte count).
  // Redraws only when the whole percent or the note changed, so calling it per megabyte is cheap.
  void Update(double fraction, std::string_view note = {}) {
    if (!enabled_) return;
    const int percent = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * 100.0 + 0.5);
    if (drawn_ && percent == percent_ && note == note_) return;
    percent_ = percent;
    note_.assign(note);
    Draw();
  }

  // Update with "done/total MB" (or GB from 10 GB on) as the note, redrawn once per percent.
  void UpdateBytes(uint64_t done, uint64_t total) {
    if (!enabled_) return;
    const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / total;
    const int percent = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * 100.0 + 0.5);
    if (drawn_ && percent == percent_) return;
    const bool gb = total >= uint64_t{10'000'000'000};
    const double unit = gb ? 1e9 : 1e6;
    char note[64];
    std::snprintf(note, sizeof(note), "%.1f/%.1f %s", done / unit, total / unit, gb ? "GB" : "MB");
    Update(fraction, note);
  }

  // Renames the bar (the next Update draws the new label).
  void SetLabel(std::string label) { label_ = std::move(label); }

  // Erases the drawn line, so that other output (a benchmark's figures on the same terminal) can
  // follow; the next Update draws it again.
  void Clear() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(out_, "\r%*s\r", static_cast<int>(width_), "");
    std::fflush(out_);
    drawn_ = false;
    width_ = 0;
  }

  // Leaves the last state on screen and ends its line. Idempotent; a later Update starts a new
  // line.
  void Finish() {
    if (!enabled_ || !drawn_) return;
    std::fputc('\n', out_);
    std::fflush(out_);
    drawn_ = false;
    width_ = 0;
  }

 private:
  static constexpr int kWidth = 30;

  void Draw() {
    const int filled = percent_ * kWidth / 100;
    std::string line = label_;
    line += " [";
    line.append(static_cast<size_t>(filled), '#');
    line.append(static_cast<size_t>(kWidth - filled), ' ');
    char pct[16];
    std::snprintf(pct, sizeof(pct), "] %3d%%", percent_);
    line += pct;
    if (!note_.empty()) line += "  " + note_;
    // Pad over what a longer previous line left behind.
    const size_t width = line.size();
    if (width < width_) line.append(width_ - width, ' ');
    width_ = width;
    std::fprintf(out_, "\r%s", line.c_str());
    std::fflush(out_);
    drawn_ = true;
  }

  std::string label_;
  std::FILE* out_;
  bool enabled_;
  bool drawn_ = false;  // a line of ours is on screen, unterminated
  int percent_ = -1;
  std::string note_;
  size_t width_ = 0;  // characters of the line on screen
};

}  // namespace atoma
