// The Graph: the DAG's tasks as a layered graph (see layout.js) in SVG, each node
// coloured by its TaskInstance's state in the selected run. Live updates change
// the nodes' colours in place; the layout is only recomputed for a new DAG version.

import { h, s, replace, stateLabel, stateKey, empty, toast } from "./dom.js";
import { withParams } from "./router.js";
import { NODE_W, NODE_H, edgePath } from "./layout.js";
import { summarize, describeCounts, groupByTask, dagVersion } from "./model.js";
import { legend } from "./grid.js";

export function render(el, ctx) {
  const lay = ctx.layout;
  if (!lay || !ctx.tasks.length) {
    replace(el, empty("This DAG has no tasks."));
    return;
  }
  const key = dagVersion(ctx.dag).hash;
  let svg = el.querySelector("svg.graph");
  if (!svg || svg.dataset.key !== key) {
    svg = build(ctx, lay);
    svg.dataset.key = key;
    replace(el,
      h("p", { class: "muted small", "data-testid": "graph-caption" }),
      h("div", { class: "graph-wrap", "data-testid": "graph" }, svg),
      legend());
  }
  paint(el, svg, ctx);
}

function build(ctx, lay) {
  const edges = lay.edges.map((e) => s("path", {
    class: "edge", d: edgePath(e.points), "marker-end": "url(#arrow)",
    "data-testid": `graph-edge-${e.from}-${e.to}`, "data-from": e.from, "data-to": e.to,
  }));
  const nodes = [...lay.nodes.values()].map((n) => {
    const t = ctx.taskMap.get(n.id);
    const open = () => {
      if (!ctx.selectedRunId) {
        toast(`${ctx.dagId} has no runs yet: trigger one to see ${n.id}'s TaskInstance.`);
        return;
      }
      withParams({ run: ctx.selectedRunId, task: n.id, map_index: null, try: null });
    };
    const title = s("title", {}, n.id);
    const name = n.id.length > 24 ? n.id.slice(0, 23) + "…" : n.id;
    return s("g", {
      class: "node state-none",
      transform: `translate(${n.x},${n.y})`,
      tabindex: "0",
      role: "button",
      "data-testid": `graph-node-${n.id}`,
      "data-task": n.id,
      "data-state": "none",
      onclick: open,
      onkeydown: (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          open();
        }
      },
    },
    title,
    s("rect", { class: "node-box", width: NODE_W, height: NODE_H, rx: 6, ry: 6 }),
    s("text", { class: "node-name", x: 10, y: 19 }, name),
    s("text", { class: "node-sub", x: 10, y: 36 }, `${t ? t.operator : ""}${t && t.is_mapped ? " [mapped]" : ""}`),
    s("text", { class: "node-state", x: NODE_W - 8, y: 36, "text-anchor": "end" }, ""));
  });
  return s("svg", {
    class: "graph", width: lay.width, height: lay.height, viewBox: `0 0 ${lay.width} ${lay.height}`,
    role: "group", "aria-label": `Graph of ${ctx.dagId}: ${ctx.tasks.length} tasks`,
  },
  s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
  s("g", { class: "edges" }, edges),
  s("g", { class: "nodes" }, nodes));
}

function paint(el, svg, ctx) {
  const run = ctx.selectedRun();
  const tis = run ? ctx.tis.get(run.dag_run_id) : null;
  const grouped = groupByTask(tis);
  const caption = el.querySelector('[data-testid="graph-caption"]');
  if (caption) {
    caption.textContent = run
      ? `States of run ${run.dag_run_id} (${stateLabel(run.state)}). Select a task to see its details and log.`
      : "No runs yet: the graph shows the DAG's structure.";
  }
  for (const g of svg.querySelectorAll("g.node")) {
    const id = g.dataset.task;
    const sum = summarize(grouped.get(id));
    const state = sum ? sum.state : null;
    const key = stateKey(state);
    g.setAttribute("class", `node state-${key}${ctx.params.task === id ? " selected" : ""}`);
    g.dataset.state = tis ? (state ?? "none") : "none";
    const stateText = !sum ? "" : sum.mapped ? `${sum.count}× ${stateLabel(state)}` : stateLabel(state);
    g.querySelector(".node-state").textContent = stateText;
    const desc = !sum ? (run ? "no TaskInstance" : "no run selected") : sum.mapped ? `${sum.count} mapped: ${describeCounts(sum)}` : stateLabel(state);
    g.setAttribute("aria-label", `${id}: ${desc}`);
    g.querySelector("title").textContent = `${id} — ${desc}`;
  }
}
