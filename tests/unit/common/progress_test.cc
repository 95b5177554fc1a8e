#include "atoma/common/progress.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atoma {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// What a ProgressBar writes, captured through a memory stream.
class Capture {
 public:
  Capture() : file_(open_memstream(&buf_, &size_)) {}
  ~Capture() {
    std::fclose(file_);
    std::free(buf_);
  }
  std::FILE* file() { return file_; }
  std::string Text() {
    std::fflush(file_);
    return std::string(buf_, size_);
  }

 private:
  char* buf_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

TEST(ProgressBarTest, DisabledWritesNothing) {
  Capture out;
  {
    ProgressBar bar("synth", out.file(), false);
    EXPECT_FALSE(bar.enabled());
    bar.Update(0.5, "half");
    bar.UpdateBytes(1, 2);
    bar.Clear();
    bar.Finish();
  }
  EXPECT_EQ(out.Text(), "");
}

TEST(ProgressBarTest, DrawsLabelBarAndPercent) {
  Capture out;
  ProgressBar bar("synth tiny", out.file(), true);
  bar.Update(0.5);
  EXPECT_EQ(out.Text(), "\rsynth tiny [###############               ]  50%");
  bar.Update(1.0);
  EXPECT_THAT(out.Text(), EndsWith("\rsynth tiny [##############################] 100%"));
  bar.Finish();
  EXPECT_THAT(out.Text(), EndsWith("100%\n"));
}

TEST(ProgressBarTest, RedrawsOnlyWhenPercentOrNoteChanges) {
  Capture out;
  ProgressBar bar("x", out.file(), true);
  bar.Update(0.100);
  const std::string once = out.Text();
  bar.Update(0.101);  // still 10%
  bar.Update(0.1, "");
  EXPECT_EQ(out.Text(), once);
  bar.Update(0.1, "phase two");
  EXPECT_THAT(out.Text(), EndsWith(" 10%  phase two"));
}

TEST(ProgressBarTest, ClampsFractions) {
  Capture out;
  ProgressBar bar("x", out.file(), true);
  bar.Update(-3);
  EXPECT_THAT(out.Text(), EndsWith("]   0%"));
  bar.Update(7);
  EXPECT_THAT(out.Text(), EndsWith("] 100%"));
}

TEST(ProgressBarTest, ShorterLineOverwritesTheLongerOne) {
  Capture out;
  ProgressBar bar("x", out.file(), true);
  bar.Update(0.2, "a long phase name");
  const size_t long_width = out.Text().size() - 1;  // without the leading \r
  bar.Update(0.2, "short");
  const std::string text = out.Text();
  const std::string last = text.substr(text.rfind('\r') + 1);
  EXPECT_THAT(last, StartsWith("x ["));
  EXPECT_THAT(last, HasSubstr(" 20%  short"));
  EXPECT_EQ(last.size(), long_width);  // padded with spaces over the old tail
  EXPECT_THAT(last, EndsWith("short            "));
}

TEST(ProgressBarTest, UpdateBytesShowsMegabytesThenGigabytes) {
  Capture out;
  ProgressBar bar("digest", out.file(), true);
  bar.UpdateBytes(0, 489'100'000);
  EXPECT_THAT(out.Text(), EndsWith("]   0%  0.0/489.1 MB"));
  bar.UpdateBytes(210'400'000, 489'100'000);
  EXPECT_THAT(out.Text(), EndsWith("]  43%  210.4/489.1 MB"));
  const std::string before = out.Text();
  bar.UpdateBytes(210'500'000, 489'100'000);  // same percent: no redraw
  EXPECT_EQ(out.Text(), before);
  ProgressBar big("digest", out.file(), true);
  big.UpdateBytes(16'000'000'000, 32'000'000'000);
  EXPECT_THAT(out.Text(), EndsWith("]  50%  16.0/32.0 GB"));
  ProgressBar empty("digest", out.file(), true);
  empty.UpdateBytes(0, 0);  // nothing to do is done
  EXPECT_THAT(out.Text(), HasSubstr("] 100%  0.0/0.0 MB"));
}

TEST(ProgressBarTest, ClearErasesTheLineAndTheNextUpdateRedraws) {
  Capture out;
  ProgressBar bar("bench", out.file(), true);
  bar.Update(0.25, "load");
  const size_t width = out.Text().size() - 1;
  bar.Clear();
  EXPECT_THAT(out.Text(), EndsWith("\r" + std::string(width, ' ') + "\r"));
  bar.Finish();  // nothing on screen: no newline
  EXPECT_THAT(out.Text(), EndsWith(" \r"));
  bar.Update(0.25, "load");  // same state as before, drawn again after Clear
  EXPECT_THAT(out.Text(), EndsWith("\rbench [#######                       ]  25%  load"));
}

TEST(ProgressBarTest, DestructorEndsTheLineOnce) {
  Capture out;
  {
    ProgressBar bar("x", out.file(), true);
    bar.Update(1);
    bar.Finish();
    bar.Finish();
  }
  {
    ProgressBar bar("y", out.file(), true);
    bar.Update(1);
  }
  const std::string text = out.Text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_THAT(text, EndsWith("] 100%\n"));
}

TEST(ProgressBarTest, SetLabelRenamesOnTheNextDraw) {
  Capture out;
  ProgressBar bar("one", out.file(), true);
  bar.Update(0.5);
  bar.SetLabel("two");
  bar.Update(0.6);
  EXPECT_THAT(out.Text(), HasSubstr("\rtwo ["));
}

}  // namespace
}  // namespace atoma
