// Write a gantry GPU selection policy in a few lines of JavaScript.
//
// A policy is called once per scheduling pass with the jobs that may start, the GPUs as the
// sampler sees them and the rules in force, and answers where each job goes. Whatever it
// answers, the host checks again and drops what does not fit. `placeBy` fits, counts GPUs and
// books memory as that check does (it follows the Rust SDK's `place_by` line for line), so a
// policy usually only says which GPUs it prefers, as a comparison: negative puts `a` first, ties
// go to the lower index.
//
// The records arrive as jco lowers them: fields in camelCase, `u64` figures (ids, memory,
// times) as BigInt, a missing `option` as undefined.

/** The `gantry:plugin` package this module was written for; the host refuses other versions. */
export const WIT_VERSION = "0.5.0";

/** What `meta.info` answers for a policy. */
export function info(name, version) {
  return { name, version, kind: "policy", witVersion: WIT_VERSION };
}

const sub = (a, b) => (a > b ? a - b : 0n);
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** What a job may still use on `gpu` before anything is placed this pass: a GPU that was busy a
 * moment ago will be busy again, so it is judged by the window's peak. */
export function freeMib(gpu, rules) {
  const used = gpu.memoryUsedMib > gpu.memoryPeakMib ? gpu.memoryUsedMib : gpu.memoryPeakMib;
  return sub(sub(sub(gpu.memoryTotalMib, used), gpu.memoryReservedMib), rules.memoryMarginMib);
}

/** Tightest fit first: keeps the roomiest GPUs whole for the jobs that need them. */
export const bestFit = (a, b) => cmp(a.freeMib, b.freeMib);

/** Roomiest first, then the least utilised: spreads load and heat. */
export const spread = (a, b) => cmp(b.freeMib, a.freeMib) || cmp(a.gpu.utilizationMean, b.gpu.utilizationMean);

/** Coolest first (a GPU that reports no temperature last), then the tightest fit. */
export const coolest = (a, b) => {
  const heat = (c) => c.gpu.temperatureC ?? Infinity;
  return cmp(heat(a), heat(b)) || bestFit(a, b);
};

/** Least utilised over the window first, then the fewest gantry jobs, then the roomiest. */
export const leastLoaded = (a, b) =>
  cmp(a.gpu.utilizationMean, b.gpu.utilizationMean) || cmp(a.gpu.gantryJobs, b.gpu.gantryJobs) || cmp(b.freeMib, a.freeMib);

/** Priority; of equal priority whoever used less lately (fair share); then the jobs needing more
 * GPUs, the hardest to fit; then submission order. */
const jobOrder = (a, b) =>
  cmp(b.priority, a.priority) || cmp(a.ownerUsage, b.ownerUsage) || cmp(b.minGpus, a.minGpus) || cmp(a.submittedMs, b.submittedMs) || cmp(a.id, b.id);

/** Places as many of `pending` as fit, greedily, on the GPUs `order` puts first. Jobs that do not
 * fit are left out and wait for the next pass. */
export function placeBy(pending, gpus, rules, order) {
  const free = gpus.map((g) => freeMib(g, rules));
  const occupied = gpus.map((g) => g.gantryJobs > 0 || g.memoryReservedMib > 0n);
  const placements = [];
  for (const job of [...pending].sort(jobOrder)) {
    if (job.minGpus === 0) continue;
    const fits = [];
    gpus.forEach((g, p) => {
      if (g.eligible && free[p] >= job.memoryMib && (rules.allowSharing || !occupied[p])) fits.push(p);
    });
    // Seed 004's GPU-count rule: min(max, max(min, available - gpu_left)).
    const count = job.minGpus === job.maxGpus ? job.minGpus : Math.min(job.maxGpus, Math.max(job.minGpus, Math.max(0, fits.length - rules.gpuLeft)));
    if (count === 0 || fits.length < count) continue;
    const candidate = (p) => ({ gpu: gpus[p], freeMib: free[p] });
    fits.sort((a, b) => order(candidate(a), candidate(b)) || gpus[a].index - gpus[b].index);
    const chosen = fits.slice(0, count);
    for (const p of chosen) {
      free[p] -= job.memoryMib;
      occupied[p] = true;
    }
    placements.push({ job: job.id, gpus: chosen.map((p) => gpus[p].index).sort((a, b) => a - b) });
  }
  return placements;
}
