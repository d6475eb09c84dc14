// Fixtures for testing a policy natively (`node --test`): GPUs, jobs and rules shaped as jco
// lowers them, with every field set to what a quiet machine reports, to change where a test
// needs it.

/** An idle, eligible GPU with all of its memory free. */
export function gpu(index, totalMib, temperatureC = undefined) {
  return {
    index, uuid: `GPU-${index}`, name: "test GPU", memoryTotalMib: BigInt(totalMib), memoryUsedMib: 0n, memoryPeakMib: 0n, utilizationMean: 0,
    temperatureC, powerMw: undefined, memoryReservedMib: 0n, gantryJobs: 0, foreignProcesses: 0, eligible: true,
  };
}

/** A job of its own queue that needs `gpus` GPUs with `memoryMib` each. */
export function job(id, memoryMib, gpus = 1) {
  return {
    id: BigInt(id), queue: BigInt(id), minGpus: gpus, maxGpus: gpus, memoryMib: BigInt(memoryMib), priority: 0, attempts: 0,
    submittedMs: BigInt(id), labels: undefined, owner: undefined, ownerUsage: 0,
  };
}

/** No margin, no sharing, no GPUs kept back. */
export function rules() {
  return { gpuLeft: 0, minGpu: 1, maxGpu: 1, memoryMarginMib: 0n, allowSharing: false, memorySaveMode: false, params: [] };
}

/** The policy's answer as [job, GPUs] pairs, the job as a Number. */
export function run(policy, pending, gpus, rules) {
  return policy.place(pending, gpus, rules).map((p) => [Number(p.job), p.gpus]);
}
