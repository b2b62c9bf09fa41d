// Layered ("Sugiyama") layout of a DAG, left to right:
//  1. layers by longest path from the sources (a task sits one layer right of its
//     furthest upstream task);
//  2. edges spanning several layers get a dummy node in each layer they cross, so
//     they take part in ordering and bend around the nodes;
//  3. nodes are ordered within layers by barycenter sweeps (down, then up, a few
//     times), keeping the ordering with the fewest edge crossings;
//  4. coordinates: each layer a column, centred vertically.

export const NODE_W = 190;
export const NODE_H = 46;
const GAP_X = 70;
const GAP_Y = 18;
const DUMMY_H = 14;
const MARGIN = 16;
const SWEEPS = 8;

/**
 * @param {{task_id: string, upstream_task_ids?: string[]}[]} tasks
 * @returns {{nodes: Map<string, {id, layer, x, y}>, edges: {from, to, points: number[][]}[],
 *           width: number, height: number, order: string[], crossings: number}}
 */
export function layout(tasks) {
  const ids = tasks.map((t) => t.task_id);
  const known = new Set(ids);
  const up = new Map(ids.map((id) => [id, []]));
  const down = new Map(ids.map((id) => [id, []]));
  for (const t of tasks) {
    for (const u of t.upstream_task_ids || []) {
      if (!known.has(u) || u === t.task_id) continue;
      up.get(t.task_id).push(u);
      down.get(u).push(t.task_id);
    }
  }

  // Topological order (Kahn), stable in definition order; anything left on a
  // cycle (never in a valid DAG) is appended so the view still shows it.
  const indeg = new Map(ids.map((id) => [id, up.get(id).length]));
  const topo = [];
  const ready = ids.filter((id) => indeg.get(id) === 0);
  while (ready.length) {
    const id = ready.shift();
    topo.push(id);
    for (const d of down.get(id)) {
      indeg.set(d, indeg.get(d) - 1);
      if (indeg.get(d) === 0) ready.push(d);
    }
  }
  const placed = new Set(topo);
  for (const id of ids) if (!placed.has(id)) topo.push(id);

  // 1. Longest-path layers.
  const layer = new Map();
  for (const id of topo) {
    let l = 0;
    for (const u of up.get(id)) if (layer.has(u)) l = Math.max(l, layer.get(u) + 1);
    layer.set(id, l);
  }
  const nLayers = ids.length ? Math.max(...layer.values()) + 1 : 0;

  // 2. Dummy nodes for long edges. `succ`/`pred` are the layered graph's edges.
  const succ = new Map();
  const pred = new Map();
  const isDummy = new Set();
  const addNode = (id) => {
    succ.set(id, []);
    pred.set(id, []);
  };
  const link = (a, b) => {
    succ.get(a).push(b);
    pred.get(b).push(a);
  };
  ids.forEach(addNode);
  const chains = []; // {from, to, via: [dummy ids]}
  let dummyCount = 0;
  for (const id of topo) {
    for (const d of down.get(id)) {
      const via = [];
      let prev = id;
      for (let l = layer.get(id) + 1; l < layer.get(d); l++) {
        const dummy = `\u0000dummy${dummyCount++}`;
        addNode(dummy);
        isDummy.add(dummy);
        layer.set(dummy, l);
        link(prev, dummy);
        via.push(dummy);
        prev = dummy;
      }
      link(prev, d);
      chains.push({ from: id, to: d, via });
    }
  }

  // Initial order: by depth-first discovery from the sources, which keeps
  // families together before any sweep.
  const layers = Array.from({ length: nLayers }, () => []);
  const seen = new Set();
  const visit = (n) => {
    if (seen.has(n)) return;
    seen.add(n);
    layers[layer.get(n)].push(n);
    for (const c of succ.get(n)) visit(c);
  };
  for (const id of topo) if (pred.get(id).length === 0) visit(id);
  for (const id of topo) visit(id);

  // 3. Barycenter sweeps, keeping the best ordering seen.
  const pos = new Map();
  const index = () => layers.forEach((ns) => ns.forEach((n, i) => pos.set(n, i)));
  index();
  let best = layers.map((ns) => [...ns]);
  let bestCrossings = countCrossings(layers, succ, pos);
  const sortBy = (ns, neighbours) => {
    const bary = new Map();
    for (const n of ns) {
      const nb = neighbours.get(n);
      bary.set(n, nb.length ? nb.reduce((acc, m) => acc + pos.get(m), 0) / nb.length : pos.get(n));
    }
    // Stable: ties keep their current relative order.
    ns.sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
    ns.forEach((n, i) => pos.set(n, i));
  };
  for (let i = 0; i < SWEEPS && bestCrossings > 0; i++) {
    for (let l = 1; l < nLayers; l++) sortBy(layers[l], pred);
    for (let l = nLayers - 2; l >= 0; l--) sortBy(layers[l], succ);
    const c = countCrossings(layers, succ, pos);
    if (c < bestCrossings) {
      bestCrossings = c;
      best = layers.map((ns) => [...ns]);
    }
  }
  best.forEach((ns, l) => (layers[l] = ns));
  index();

  // 4. Coordinates: columns per layer, each centred on the tallest one.
  const slot = (n) => (isDummy.has(n) ? DUMMY_H : NODE_H) + GAP_Y;
  const heights = layers.map((ns) => ns.reduce((acc, n) => acc + slot(n), 0) - GAP_Y);
  const tallest = Math.max(0, ...heights);
  const coords = new Map();
  layers.forEach((ns, l) => {
    let y = MARGIN + (tallest - heights[l]) / 2;
    const x = MARGIN + l * (NODE_W + GAP_X);
    for (const n of ns) {
      const hgt = isDummy.has(n) ? DUMMY_H : NODE_H;
      coords.set(n, { x, y, cy: y + hgt / 2 });
      y += slot(n);
    }
  });

  const nodes = new Map();
  for (const id of ids) {
    const c = coords.get(id);
    nodes.set(id, { id, layer: layer.get(id), x: c.x, y: c.y });
  }
  const edges = chains.map(({ from, to, via }) => {
    const a = coords.get(from);
    const b = coords.get(to);
    const points = [[a.x + NODE_W, a.cy]];
    for (const d of via) {
      const c = coords.get(d);
      points.push([c.x, c.cy], [c.x + NODE_W, c.cy]);
    }
    points.push([b.x, b.cy]);
    return { from, to, points };
  });
  const order = layers.flat().filter((n) => !isDummy.has(n));
  return {
    nodes,
    edges,
    order,
    crossings: bestCrossings,
    width: MARGIN * 2 + Math.max(0, nLayers * (NODE_W + GAP_X) - GAP_X),
    height: MARGIN * 2 + tallest,
  };
}

/** Edge crossings between adjacent layers: pairs of edges whose ends are in
 *  opposite orders. */
export function countCrossings(layers, succ, pos) {
  let total = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const es = [];
    for (const n of layers[l]) for (const m of succ.get(n)) es.push([pos.get(n), pos.get(m)]);
    for (let i = 0; i < es.length; i++) {
      for (let j = i + 1; j < es.length; j++) {
        const [a1, b1] = es[i];
        const [a2, b2] = es[j];
        if ((a1 - a2) * (b1 - b2) < 0) total++;
      }
    }
  }
  return total;
}

/** An SVG path through the points: straight through dummy columns, smooth cubic
 *  curves with horizontal tangents between columns. */
export function edgePath(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1] = points[i];
    if (y0 === y1 || i % 2 === 0) {
      d += ` L${x1},${y1}`;
    } else {
      const mx = (x0 + x1) / 2;
      d += ` C${mx},${y0} ${mx},${y1} ${x1},${y1}`;
    }
  }
  return d;
}

/** Tasks in display order for the grid: layer by layer as the graph orders them. */
export function taskOrder(tasks) {
  return layout(tasks).order;
}
