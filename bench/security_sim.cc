// atoma_security_sim: the security parameters of Sampling Consensus (DESIGN §4.4, §4.6, §4.7),
// measured rather than assumed. A program, not a test; docs/security.md shows its output.
//
//   atoma_security_sim [--draws N] [--threads N] [--seed N] [--nodes N] [--zipf S]
//
// Part 1, committee corruption: the probability that a colluding stake fraction f holds ALL n
// seats of a committee, three ways:
//   (a) naive f^n (independent draws, with replacement);
//   (b) exact, for stake-weighted draws without replacement over a concrete skewed registry
//       (`--nodes` nodes with Zipf stakes ~ 1/i^S), the attacker owning the largest or the
//       smallest nodes (scaled so that its stake is exactly f of the total);
//   (c) Monte Carlo with the real SelectCommittee over random request ids (Wilson 95% interval).
// Part 2, cross-validation: the minimum coin probability p that keeps cheating unprofitable, its
// expected cost 1 + p*k, and the probability that a cheating executor escapes.
//
// Exact method for (b). If every one of the first n draws hits the attacker, no honest node is
// ever removed, so the honest stake H stays constant and only the attacker's own nodes matter.
// Stake-weighted sampling without replacement is equivalent to giving node i an exponential clock
// of rate s_i and drawing nodes in the order their clocks ring. "The first n draws are all
// attacker nodes" is "the n-th attacker clock rings before every honest clock"; the minimum of
// the honest clocks is Exp(H), so
//     P_n = E[exp(-H * T_n)] = integral_0^inf e^(-tau) * Q_n(tau / H) dtau,
// where T_n is the n-th attacker ring time and Q_n(t) = P(at least n attacker clocks have rung by
// t), a Poisson-binomial tail with p_i(t) = 1 - exp(-s_i t) computed by a count DP with only
// additions of positive terms (no cancellation, so tiny probabilities keep their relative
// precision). The integral is taken by exp-sinh (double exponential) quadrature, error estimated by
// halving the step. It is cross-checked, where the attacker has <= 20 nodes, against a direct
// recursion over the sequential draws (state = set of attacker nodes already drawn):
//     W(S) = sum_{x in S} W(S \ x) * s_x / (H + A - stake(S \ x)),  P_n = sum_{|S| = n} W(S),
// and at start-up against the closed form for equal-stake attacker nodes.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "atoma/common/uint256.h"
#include "atoma/consensus/committee.h"

namespace {

using atoma::Uint256;
using atoma::consensus::Address;
using atoma::consensus::Candidate;
using atoma::consensus::Hash256;
using atoma::consensus::SelectCommittee;

constexpr int kMaxTableN = 10;    // committee sizes printed in the tables
constexpr int kMaxSizingN = 200;  // committee sizes searched for the sizing summary
constexpr double kTotalStake = 1e12;
constexpr double kFractions[] = {0.05, 0.1, 0.2, 0.3, 0.4, 0.5};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "atoma_security_sim: %s\n", what.c_str());
  std::exit(1);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Flags {
  long draws = 200000;  // Monte Carlo committees per (f, attacker placement)
  int threads = 2;
  uint64_t seed = 1;
  int nodes = 100;
  double zipf = 1.0;
};

Flags ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value for " + a);
      return argv[++i];
    };
    try {
      if (a == "--draws") {
        flags.draws = std::stol(value());
      } else if (a == "--threads") {
        flags.threads = std::stoi(value());
      } else if (a == "--seed") {
        flags.seed = std::stoull(value());
      } else if (a == "--nodes") {
        flags.nodes = std::stoi(value());
      } else if (a == "--zipf") {
        flags.zipf = std::stod(value());
      } else if (a == "--help" || a == "-h") {
        std::printf(
            "usage: atoma_security_sim [--draws N (200000; 0 skips Monte Carlo)] [--threads N (2)]"
            " [--seed N (1)] [--nodes N (100)] [--zipf S (1.0)]\n");
        std::exit(0);
      } else {
        Die("unknown flag " + a);
      }
    } catch (const std::exception& e) {
      Die("bad value for " + a + ": " + e.what());
    }
  }
  if (flags.draws < 0 || flags.threads < 1 || flags.nodes < 2 || flags.zipf < 0) {
    Die("flags out of range");
  }
  return flags;
}

// ---------------------------------------------------------------------------------------------
// Registries.

enum class Placement { kLargest, kSmallest };

const char* PlacementName(Placement p) {
  return p == Placement::kLargest ? "largest nodes" : "smallest nodes";
}

struct Registry {
  std::vector<uint64_t> stake;  // integer base units, as the ledger holds them
  std::vector<bool> attacker;
  std::vector<Address> address;
  double f = 0;  // the attacker's exact stake fraction after rounding
  int attacker_nodes = 0;
  double honest_stake = 0;
  std::vector<double> attacker_stakes;
};

// Zipf weights 1/i^s over `nodes` nodes; the attacker takes the m nodes at one end whose weight
// is closest to f (at least one), and both sides are scaled so that the attacker holds exactly f.
Registry BuildRegistry(const Flags& flags, double f, Placement placement, std::mt19937_64& rng) {
  const int n = flags.nodes;
  std::vector<double> w(n);
  double total = 0;
  for (int i = 0; i < n; ++i) total += (w[i] = 1.0 / std::pow(i + 1, flags.zipf));
  auto index = [&](int j) { return placement == Placement::kLargest ? j : n - 1 - j; };
  int m = 0;
  double taken = 0, best = 1e300;
  for (int j = 0, best_m = 0; j < n - 1; ++j) {
    taken += w[index(j)];
    if (std::abs(taken / total - f) < best) {
      best = std::abs(taken / total - f);
      best_m = j + 1;
    }
    m = best_m;
  }
  Registry r;
  r.stake.resize(n);
  r.attacker.assign(n, false);
  double wa = 0, wh = 0;
  for (int j = 0; j < m; ++j) r.attacker[index(j)] = true;
  for (int i = 0; i < n; ++i) (r.attacker[i] ? wa : wh) += w[i];
  double a_sum = 0, h_sum = 0;
  for (int i = 0; i < n; ++i) {
    const double share = r.attacker[i] ? f * w[i] / wa : (1 - f) * w[i] / wh;
    r.stake[i] = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(share * kTotalStake)));
    if (r.attacker[i]) {
      a_sum += static_cast<double>(r.stake[i]);
      r.attacker_stakes.push_back(static_cast<double>(r.stake[i]));
    } else {
      h_sum += static_cast<double>(r.stake[i]);
    }
  }
  r.attacker_nodes = m;
  r.honest_stake = h_sum;
  r.f = a_sum / (a_sum + h_sum);
  // Random distinct addresses, so the address order SelectCommittee walks is unrelated to stake.
  std::unordered_set<uint64_t> seen;
  r.address.resize(n);
  for (int i = 0; i < n; ++i) {
    for (;;) {
      for (auto& b : r.address[i]) b = static_cast<uint8_t>(rng());
      uint64_t key = 0;
      for (int b = 0; b < 8; ++b) key = key << 8 | r.address[i][b];
      if (seen.insert(key).second) break;
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Exact probabilities.

// P(the first n draws are all attacker nodes) for n = 0..nmax (index n), by the exponential-clock
// integral. `err` receives the largest relative change when the quadrature step is halved.
std::vector<double> ExactByIntegral(const std::vector<double>& a, double h, int nmax, double* err) {
  // Q(t)[c] = P(exactly c attacker clocks rang by t), c capped at nmax (last bin means >= nmax).
  auto tail = [&](double tau, std::vector<double>* q) {
    const double t = tau / h;
    std::vector<double> dist(nmax + 1, 0.0);
    dist[0] = 1;
    int top = 0;
    for (double s : a) {
      const double p = -std::expm1(-s * t), stay = std::exp(-s * t);
      if (top < nmax) ++top;
      // Capped bin: mass already at nmax stays there whatever this clock does.
      for (int c = top; c >= 1; --c) {
        dist[c] = (c == nmax ? dist[c] : dist[c] * stay) + dist[c - 1] * p;
      }
      dist[0] *= stay;
    }
    q->assign(nmax + 1, 0.0);
    double acc = 0;
    for (int c = nmax; c >= 0; --c) (*q)[c] = (acc += dist[c]);  // P(count >= c)
  };
  // exp-sinh: tau = exp(pi/2 sinh x), dtau = tau * pi/2 * cosh x dx.
  auto integrate = [&](double step) {
    std::vector<double> sum(nmax + 1, 0.0), q;
    for (double x = -6.0; x <= 6.0 + 1e-12; x += step) {
      const double tau = std::exp(M_PI / 2 * std::sinh(x));
      if (tau > 800) break;  // e^-tau underflows
      const double weight = std::exp(-tau) * tau * M_PI / 2 * std::cosh(x) * step;
      if (weight == 0) continue;
      tail(tau, &q);
      for (int n = 0; n <= nmax; ++n) sum[n] += weight * q[n];
    }
    return sum;
  };
  const std::vector<double> coarse = integrate(1.0 / 32), fine = integrate(1.0 / 64);
  double worst = 0;
  for (int n = 0; n <= nmax; ++n) {
    // Values below 1e-15 decide nothing here (targets are >= 1e-9) and lie where the integrand
    // sits at tau of hundreds, e^-tau near underflow; leave them out of the estimate.
    if (fine[n] > 1e-15) worst = std::max(worst, std::abs(fine[n] - coarse[n]) / fine[n]);
  }
  if (err != nullptr) *err = worst;
  std::vector<double> out = fine;
  for (int n = 0; n <= nmax; ++n) {
    if (n > static_cast<int>(a.size())) out[n] = 0;  // cannot fill more seats than it has nodes
  }
  return out;
}

// The same by recursion over the sequential draws, state = the set of attacker nodes drawn.
std::vector<double> ExactBySubsets(const std::vector<double>& a, double h, int nmax) {
  const int m = static_cast<int>(a.size());
  if (m > 20) Die("subset recursion needs <= 20 attacker nodes");
  const uint32_t full = 1u << m;
  std::vector<long double> w(full, 0.0L), drawn(full, 0.0L);
  double total_a = 0;
  for (double s : a) total_a += s;
  w[0] = 1;
  std::vector<double> out(nmax + 1, 0.0);
  for (uint32_t set = 0; set < full; ++set) {
    if (set != 0) {
      const int low = __builtin_ctz(set);
      drawn[set] = drawn[set & (set - 1)] + a[low];
    }
    const int size = __builtin_popcount(set);
    if (size <= nmax) out[size] += static_cast<double>(w[set]);
    if (size >= nmax || w[set] == 0) continue;
    const long double remaining = h + total_a - drawn[set];
    for (int x = 0; x < m; ++x) {
      if (!(set & (1u << x))) w[set | (1u << x)] += w[set] * a[x] / remaining;
    }
  }
  return out;
}

// Closed form for m equal-stake attacker nodes of stake s: prod_i (m-i)s / ((m-i)s + h).
double ExactEqual(int m, double s, double h, int n) {
  double p = 1;
  for (int i = 0; i < n; ++i) p *= i < m ? (m - i) * s / ((m - i) * s + h) : 0.0;
  return p;
}

void SelfCheck() {
  double worst = 0, err = 0;
  for (int m : {1, 3, 12, 60}) {
    const double f = 0.3, s = f / m, h = 1 - f;
    const auto integral = ExactByIntegral(std::vector<double>(m, s), h, kMaxTableN, &err);
    for (int n = 1; n <= kMaxTableN; ++n) {
      const double want = ExactEqual(m, s, h, n);
      if (want == 0) {
        if (integral[n] != 0) Die("self-check: integral nonzero where closed form is zero");
        continue;
      }
      worst = std::max(worst, std::abs(integral[n] - want) / want);
    }
  }
  // Unequal stakes: the integral against the recursion over the sequential draws.
  std::mt19937_64 rng(7);
  double worst_subsets = 0;
  for (int m : {5, 12, 16}) {
    std::vector<double> a(m);
    double total_a = 0;
    for (auto& s : a) total_a += (s = 1 + static_cast<double>(rng() % 1000));
    const double h = total_a * 2.5;  // f ~ 0.29
    const auto integral = ExactByIntegral(a, h, kMaxTableN, &err);
    const auto subsets = ExactBySubsets(a, h, kMaxTableN);
    for (int n = 1; n <= kMaxTableN; ++n) {
      if (subsets[n] == 0) continue;
      worst_subsets = std::max(worst_subsets, std::abs(integral[n] - subsets[n]) / subsets[n]);
    }
  }
  std::printf(
      "self-check: exponential-clock integral vs equal-stake closed form, max rel. error %.2e;\n"
      "            vs subset recursion on random unequal stakes (m = 5, 12, 16), %.2e\n",
      worst, worst_subsets);
  if (worst > 1e-9 || worst_subsets > 1e-9) Die("self-check failed");
}

// ---------------------------------------------------------------------------------------------
// Monte Carlo with the real SelectCommittee.

struct McResult {
  std::array<long, kMaxTableN + 1> hits{};  // hits[n]: first n committee seats all attacker
  long draws = 0;
  double seconds = 0;
};

McResult MonteCarlo(const Registry& r, const Flags& flags, uint64_t seed) {
  std::vector<Candidate> candidates(r.stake.size());
  for (size_t i = 0; i < r.stake.size(); ++i) {
    candidates[i].address = r.address[i];
    candidates[i].stake = Uint256(r.stake[i]);
  }
  std::vector<Address> attackers;
  for (size_t i = 0; i < r.stake.size(); ++i) {
    if (r.attacker[i]) attackers.push_back(r.address[i]);
  }
  std::sort(attackers.begin(), attackers.end());
  Hash256 epoch_seed{};
  std::mt19937_64 seed_rng(seed ^ 0x5eed);
  for (auto& b : epoch_seed) b = static_cast<uint8_t>(seed_rng());

  McResult result;
  std::vector<std::array<long, kMaxTableN + 1>> per_thread(flags.threads);
  std::atomic<bool> failed{false};
  const double start = Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < flags.threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000003 + t);
      auto& hits = per_thread[t];
      hits.fill(0);
      const long count = flags.draws / flags.threads + (t < flags.draws % flags.threads ? 1 : 0);
      Hash256 request_id;
      for (long d = 0; d < count; ++d) {
        for (size_t b = 0; b < request_id.size(); b += 8) {
          const uint64_t v = rng();
          for (int k = 0; k < 8; ++k) request_id[b + k] = static_cast<uint8_t>(v >> (8 * k));
        }
        // One draw of the largest committee answers every n: committee(n) is its first n draws.
        auto draws = SelectCommittee(epoch_seed, request_id, candidates, kMaxTableN, 0, 0);
        if (!draws.ok()) {
          failed = true;
          return;
        }
        int run = 0;
        while (run < kMaxTableN &&
               std::binary_search(attackers.begin(), attackers.end(), draws->committee[run])) {
          ++run;
        }
        for (int n = 1; n <= run; ++n) ++hits[n];
      }
    });
  }
  for (auto& w : workers) w.join();
  if (failed) Die("SelectCommittee failed");
  for (const auto& hits : per_thread) {
    for (int n = 0; n <= kMaxTableN; ++n) result.hits[n] += hits[n];
  }
  result.draws = flags.draws;
  result.seconds = Now() - start;
  return result;
}

std::string Sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1e", v);
  return buf;
}

// Wilson score interval, 95%.
std::pair<double, double> Wilson(long hits, long n) {
  if (n == 0) return {0, 1};
  const double z = 1.959963984540054, p = static_cast<double>(hits) / n;
  const double denom = 1 + z * z / n;
  const double center = (p + z * z / (2.0 * n)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / denom;
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

// ---------------------------------------------------------------------------------------------
// Part 2: cross-validation.

double Binomial(int m, int k) {
  double c = 1;
  for (int i = 1; i <= k; ++i) c = c * (m - k + i) / i;
  return c;
}

// P(a strict majority of m referees is honest), independent draws with corrupt probability f.
double HonestMajority(int m, double f) {
  double p = 0;
  for (int bad = 0; 2 * bad < m; ++bad) {
    p += Binomial(m, bad) * std::pow(f, bad) * std::pow(1 - f, m - bad);
  }
  return p;
}

void CrossValidation() {
  std::printf(
      "\n== Part 2: cross-validation (DESIGN §4.6) ==\n"
      "One executor; with probability p (the salted coin) k validators (the next draws) "
      "re-execute.\n"
      "Symbols: R = the fee the executor forfeits when caught, S = the stake slashed when caught,\n"
      "G = what the executor gains by a false output, f = colluding stake fraction, k = "
      "validators,\n"
      "m = 2k+1 referees if the validators disagree with the executor.\n"
      "  p_design = G / ((1-f)(R+S))         DESIGN §4.7 condition p(1-f)(R+S) >= G, solved for p\n"
      "  d(p)     = p (1 - f^k) q_m          detection: coin drawn, not all k validators "
      "colluding,\n"
      "                                      and a strict honest majority of referees (q_m)\n"
      "  p_exact  = G / ((1 - f^k) q_m (R+S)) the same condition with d(p) in place of p(1-f)\n"
      "  escape   = 1 - d(p_exact)           P(a cheating executor is not caught) at p_exact\n"
      "  cost     = 1 + p k                  expected executions per request\n"
      "Draws are treated as independent (with replacement): Part 1 shows this over-estimates\n"
      "collusion, so these p are on the safe side. p > 1 means no coin suffices: raise S or "
      "k.\n\n");
  struct Example {
    double r, s, g, f;
    int k;
  };
  const Example examples[] = {
      {1, 100, 5, 0.1, 1},   {1, 100, 5, 0.3, 1}, {1, 100, 5, 0.3, 3},
      {1, 1000, 5, 0.3, 2},  {1, 20, 10, 0.2, 1}, {1, 20, 10, 0.2, 3},
      {10, 500, 50, 0.4, 3}, {1, 10, 50, 0.2, 3}, {1, 1000, 1, 0.5, 5},
  };
  std::printf("%6s %7s %6s %5s %2s | %8s %7s | %6s %8s %9s %9s %7s\n", "R", "S", "G", "f", "k",
              "p_design", "cost", "q_m", "1-f^k", "p_exact", "escape", "cost");
  for (const auto& e : examples) {
    const int m = 2 * e.k + 1;
    const double q = HonestMajority(m, e.f), not_all = 1 - std::pow(e.f, e.k);
    const double p_design = e.g / ((1 - e.f) * (e.r + e.s));
    const double p_exact = e.g / (not_all * q * (e.r + e.s));
    auto show = [](double p) {
      static thread_local char buf[4][32];
      static thread_local int slot = 0;
      char* out = buf[slot++ % 4];
      if (p > 1) {
        std::snprintf(out, 32, "%s", ">1 (none)");
      } else {
        std::snprintf(out, 32, "%.4f", p);
      }
      return out;
    };
    const double escape = p_exact <= 1 ? 1 - p_exact * not_all * q : 1 - not_all * q;
    std::printf("%6.0f %7.0f %6.0f %5.2f %2d | %8s %7s | %6.4f %8.5f %9s %9.4f %7s\n", e.r, e.s,
                e.g, e.f, e.k, show(p_design),
                p_design <= 1 ? std::to_string(1 + p_design * e.k).substr(0, 6).c_str() : "-", q,
                not_all, show(p_exact), escape,
                p_exact <= 1 ? std::to_string(1 + p_exact * e.k).substr(0, 6).c_str() : "-");
  }
  std::printf(
      "(escape at p > 1 is for p = 1: validation always on.)\n"
      "Escape is per attempt; a node that cheats on N requests is caught at least once with\n"
      "probability 1 - escape^N, and the condition makes every attempt unprofitable on average.\n");
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  const double start = Now();
  std::printf("atoma_security_sim: nodes=%d zipf=%.2f draws/cell=%ld threads=%d seed=%llu\n",
              flags.nodes, flags.zipf, flags.draws, flags.threads,
              static_cast<unsigned long long>(flags.seed));
  SelfCheck();

  std::printf(
      "\n== Part 1: committee corruption (DESIGN §4.4, §4.7) ==\n"
      "P(the colluding stake fraction f holds ALL n seats). naive = f^n; exact = stake-weighted\n"
      "draws without replacement on the registry (method in the source header); MC = real\n"
      "SelectCommittee over random request ids, hits/draws and Wilson 95%% interval.\n");
  std::mt19937_64 rng(flags.seed);
  // Sizing summary: smallest n with P <= target, per f and placement.
  const double targets[] = {1e-3, 1e-6, 1e-9};
  struct Sizing {
    double f;
    int naive[3], exact[2][3];
    int nodes[2];
  };
  std::vector<Sizing> sizing;
  long mc_cells = 0, mc_inside = 0;
  double mc_seconds = 0;
  for (double f : kFractions) {
    Sizing row{f, {}, {}, {}};
    for (int t = 0; t < 3; ++t) {
      row.naive[t] = static_cast<int>(std::ceil(std::log(targets[t]) / std::log(f) - 1e-12));
    }
    for (Placement placement : {Placement::kLargest, Placement::kSmallest}) {
      const int pi = placement == Placement::kLargest ? 0 : 1;
      const Registry r = BuildRegistry(flags, f, placement, rng);
      double err = 0;
      const std::vector<double> exact =
          ExactByIntegral(r.attacker_stakes, r.honest_stake, kMaxSizingN, &err);
      double subset_diff = -1;
      if (r.attacker_nodes <= 20) {
        const auto subsets = ExactBySubsets(r.attacker_stakes, r.honest_stake, kMaxTableN);
        subset_diff = 0;
        for (int n = 1; n <= kMaxTableN; ++n) {
          if (subsets[n] > 0) {
            subset_diff = std::max(subset_diff, std::abs(exact[n] - subsets[n]) / subsets[n]);
          } else if (exact[n] != 0) {
            Die("subset recursion and integral disagree on a zero");
          }
        }
        if (subset_diff > 1e-9) Die("subset recursion and integral disagree");
      }
      row.nodes[pi] = r.attacker_nodes;
      for (int t = 0; t < 3; ++t) {
        row.exact[pi][t] = -1;
        for (int n = 1; n <= kMaxSizingN; ++n) {
          if (exact[n] <= targets[t]) {
            row.exact[pi][t] = n;
            break;
          }
        }
      }
      McResult mc;
      if (flags.draws > 0) mc = MonteCarlo(r, flags, flags.seed + mc_cells + 17);
      mc_seconds += mc.seconds;
      std::printf(
          "\nf=%.2f, attacker = the %d %s (exact fraction %.9f), quadrature rel. err %.1e%s\n", f,
          r.attacker_nodes, PlacementName(placement), r.f, err,
          subset_diff >= 0 ? (", subset recursion agrees to " + Sci(subset_diff)).c_str() : "");
      std::printf("%3s %12s %12s %9s %12s %25s %s\n", "n", "naive f^n", "exact", "exact/f^n", "MC",
                  "MC 95% interval", "");
      for (int n = 1; n <= kMaxTableN; ++n) {
        const double naive = std::pow(f, n);
        std::printf("%3d %12.4e %12.4e %9.4f", n, naive, exact[n], exact[n] / naive);
        if (flags.draws > 0) {
          const auto [lo, hi] = Wilson(mc.hits[n], mc.draws);
          const bool inside = exact[n] >= lo && exact[n] <= hi;
          ++mc_cells;
          mc_inside += inside;
          std::printf(" %5ld/%-7ld [%10.3e,%10.3e] %s", mc.hits[n], mc.draws, lo, hi,
                      inside ? "" : "<- exact outside");
        }
        std::printf("\n");
      }
    }
    sizing.push_back(row);
  }
  if (flags.draws > 0) {
    std::printf(
        "\nMonte Carlo: exact value inside the 95%% interval in %ld of %ld cells (expect ~95%%); "
        "%.1f s in SelectCommittee (%.1f us per %d-seat committee per thread)\n",
        mc_inside, mc_cells, mc_seconds,
        mc_seconds * 1e6 * flags.threads / (static_cast<double>(flags.draws) * 12), kMaxTableN);
  }

  std::printf(
      "\n== Committee size n needed so that P(all n seats colluding) <= target ==\n"
      "naive = from f^n (independent draws); largest/smallest = exact on the registry with the\n"
      "attacker owning the largest/smallest nodes (its node count in brackets). '-' = not reached\n"
      "by n=%d.\n",
      kMaxSizingN);
  std::printf("%5s | %8s %8s %8s | %14s %8s %8s | %15s %8s %8s\n", "f", "naive1e-3", "1e-6", "1e-9",
              "largest 1e-3", "1e-6", "1e-9", "smallest 1e-3", "1e-6", "1e-9");
  for (const auto& row : sizing) {
    auto cell = [](int n) { return n < 0 ? std::string("-") : std::to_string(n); };
    std::printf("%5.2f | %8s %8s %8s | %9s (%2d) %8s %8s | %10s (%2d) %8s %8s\n", row.f,
                cell(row.naive[0]).c_str(), cell(row.naive[1]).c_str(), cell(row.naive[2]).c_str(),
                cell(row.exact[0][0]).c_str(), row.nodes[0], cell(row.exact[0][1]).c_str(),
                cell(row.exact[0][2]).c_str(), cell(row.exact[1][0]).c_str(), row.nodes[1],
                cell(row.exact[1][1]).c_str(), cell(row.exact[1][2]).c_str());
  }

  CrossValidation();
  std::printf("\ntotal %.1f s\n", Now() - start);
  return 0;
}
