// The few charts the dashboard draws, as SVG: a GPU's history (utilisation as a line, memory as
// an area) and a memory bar split between gantry's jobs, other processes and what is free.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

// `samples`: [{at_ms, memory_used_mib, utilization_gpu}], oldest first; `totalMib` scales memory.
// `spanMs` is the width of the window shown, ending at the newest sample.
export function sparkline(samples, totalMib, spanMs = 600_000) {
  const width = 300, height = 40;
  const root = svg("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  if (samples.length === 0) return root;
  const end = samples[samples.length - 1].at_ms, start = end - spanMs;
  const x = (at) => ((Math.max(at, start) - start) / spanMs) * width;
  const y = (fraction) => height - Math.min(1, Math.max(0, fraction)) * (height - 2) - 1;
  const shown = samples.filter((s) => s.at_ms >= start);
  const area = shown.map((s) => `${x(s.at_ms).toFixed(1)},${y(s.memory_used_mib / Math.max(1, totalMib)).toFixed(1)}`);
  if (area.length > 0) {
    root.append(svg("polygon", { class: "mem", points: `${x(shown[0].at_ms).toFixed(1)},${height} ${area.join(" ")} ${x(end).toFixed(1)},${height}` }));
  }
  const line = shown.filter((s) => s.utilization_gpu != null).map((s) => `${x(s.at_ms).toFixed(1)},${y(s.utilization_gpu / 100).toFixed(1)}`);
  if (line.length > 0) root.append(svg("polyline", { class: "util", points: line.join(" ") }));
  const last = samples[samples.length - 1];
  const title = svg("title", {});
  title.textContent = `last 10 minutes: utilisation ${last.utilization_gpu ?? "?"} % now (line), memory ${last.memory_used_mib} MiB now (area)`;
  root.prepend(title);
  return root;
}

// A bar of `total` split into `ours` (gantry's jobs), `others` and the rest free.
export function memoryBar(ours, others, total) {
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.setAttribute("role", "img");
  bar.setAttribute("aria-label", `memory: ${ours} MiB gantry jobs, ${others} MiB other processes, ${Math.max(0, total - ours - others)} MiB free of ${total} MiB`);
  for (const [cls, value] of [["ours", ours], ["others", others]]) {
    const part = document.createElement("span");
    part.className = cls;
    part.style.width = `${(100 * value) / Math.max(1, total)}%`;
    bar.append(part);
  }
  return bar;
}
