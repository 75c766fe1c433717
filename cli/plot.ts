// accuracy.svg and accuracy.png: validation accuracy against iteration, one
// line per arm (the median over seeds), with each seed as a thin line of the
// same colour when there are several — like Figure 3 of the fine-tuning paper —
// and the target thresholds as dashed lines. The legend shows the medians'
// colours; accuracy is in % as in the tables. Drawn with vega-lite, rendered
// headless to SVG by vega and rasterised by resvg with the fonts the SVG asks
// for (a sans-serif family, bold titles: DejaVu Sans, from fonts-dejavu-core).
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';

export interface PlotRow {
  arm: string;
  seed: number;
  iteration: number;
  valAccuracy: number;
}

export function accuracySpec(rows: PlotRow[], title: string, thresholds: number[] = []): vl.TopLevelSpec {
  const seeds = new Set(rows.map((r) => r.seed)).size;
  const x = { field: 'iteration', type: 'quantitative', title: 'iteration' } as const;
  const y = { field: 'valAccuracy', type: 'quantitative', title: 'validation accuracy', scale: { zero: false }, axis: { format: '.0%' } } as const;
  // One legend for both line layers, its swatches drawn as the medians are (not as the pale per-seed lines); labels name the multipliers: no truncation.
  const color = { field: 'arm', type: 'nominal', title: 'arm', legend: { labelLimit: 0, symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 2.5 } } as const;
  const median = {
    name: 'median',
    transform: [{ aggregate: [{ op: 'median', field: 'valAccuracy', as: 'valAccuracy' }], groupby: ['arm', 'iteration'] }],
    mark: { type: 'line', strokeWidth: 2.5 },
    encoding: { x, y, color },
  } as const;
  const perSeed = { name: 'seeds', mark: { type: 'line', strokeWidth: 1, opacity: 0.35 }, encoding: { x, y, color, detail: { field: 'seed', type: 'nominal' } } } as const;
  const targets = {
    name: 'targets',
    data: { values: thresholds.map((t) => ({ valAccuracy: t })) },
    mark: { type: 'rule', strokeDash: [4, 4], color: '#888', strokeWidth: 1 },
    encoding: { y },
  } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: seeds > 1 ? `${title} (median of ${seeds} seeds; thin lines: each seed)` : title,
    width: 640, height: 380,
    background: 'white',
    data: { values: rows },
    layer: [...(thresholds.length ? [targets] : []), ...(seeds > 1 ? [perSeed] : []), median],
  } as vl.TopLevelSpec;
}

const SANS = 'DejaVu Sans';

export async function renderAccuracy(rows: PlotRow[], title: string, thresholds: number[] = []): Promise<{ svg: string; png: Buffer }> {
  const view = new vega.View(vega.parse(vl.compile(accuracySpec(rows, title, thresholds)).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  // resvg maps the generic `sans-serif` to Arial unless told: without it the PNG fell back to a serif face.
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: SANS, sansSerifFamily: SANS } }).render().asPng();
  return { svg, png };
}
