// accuracy.svg and accuracy.png: validation accuracy against iteration, one
// line per arm (the median over seeds), with each seed as a thin line of the
// same colour when there are several — like Figure 3 of the fine-tuning paper.
// Drawn with vega-lite, rendered headless to SVG by vega and rasterised by resvg.
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';

export interface PlotRow {
  arm: string;
  seed: number;
  iteration: number;
  valAccuracy: number;
}

export function accuracySpec(rows: PlotRow[], title: string): vl.TopLevelSpec {
  const seeds = new Set(rows.map((r) => r.seed)).size;
  const x = { field: 'iteration', type: 'quantitative', title: 'iteration' } as const;
  const y = { field: 'valAccuracy', type: 'quantitative', title: 'validation accuracy', scale: { zero: false } } as const;
  const color = { field: 'arm', type: 'nominal', title: 'arm' } as const;
  const median = {
    name: 'median',
    transform: [{ aggregate: [{ op: 'median', field: 'valAccuracy', as: 'valAccuracy' }], groupby: ['arm', 'iteration'] }],
    mark: { type: 'line', strokeWidth: 2.5 },
    encoding: { x, y, color },
  } as const;
  const perSeed = { name: 'seeds', mark: { type: 'line', strokeWidth: 1, opacity: 0.35 }, encoding: { x, y, color, detail: { field: 'seed', type: 'nominal' } } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: seeds > 1 ? `${title} (median of ${seeds} seeds; thin lines: each seed)` : title,
    width: 640, height: 380,
    background: 'white',
    data: { values: rows },
    layer: seeds > 1 ? [perSeed, median] : [median],
  } as vl.TopLevelSpec;
}

export async function renderAccuracy(rows: PlotRow[], title: string): Promise<{ svg: string; png: Buffer }> {
  const view = new vega.View(vega.parse(vl.compile(accuracySpec(rows, title)).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true } }).render().asPng();
  return { svg, png };
}
