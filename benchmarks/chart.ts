/**
 * A dependency-free SVG of the benchmark's headline figures: one panel per measure, one horizontal
 * bar per tool (median), with the min–max range drawn as a whisker.
 */
export interface Bar {
  label: string;
  median: number;
  min?: number;
  max?: number;
  highlight?: boolean;
}

export interface Panel {
  title: string;
  unit: string;
  /** "higher is better" or "lower is better", printed under the title */
  better: 'higher' | 'lower';
  bars: Bar[];
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function chartSvg(title: string, subtitle: string, panels: Panel[]): string {
  const width = 820;
  const labelW = 270;
  const barH = 18;
  const gap = 6;
  const plotW = width - labelW - 90;
  let y = 56;
  const out: string[] = [];
  for (const p of panels) {
    out.push(`<text x="16" y="${y}" class="h">${esc(p.title)}</text><text x="${width - 16}" y="${y}" class="s" text-anchor="end">${esc(`${p.unit}, ${p.better} is better`)}</text>`);
    y += 10;
    const top = Math.max(...p.bars.map((b) => b.max ?? b.median)) || 1;
    for (const b of p.bars) {
      const w = (b.median / top) * plotW;
      out.push(`<text x="${labelW - 8}" y="${y + barH - 5}" class="l" text-anchor="end">${esc(b.label)}</text>`);
      out.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" class="${b.highlight ? 'pw' : 'peer'}"/>`);
      if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
        const x1 = labelW + (b.min / top) * plotW;
        const x2 = labelW + (b.max / top) * plotW;
        const cy = y + barH / 2;
        out.push(`<path d="M${x1.toFixed(1)} ${cy}H${x2.toFixed(1)}M${x1.toFixed(1)} ${cy - 4}V${cy + 4}M${x2.toFixed(1)} ${cy - 4}V${cy + 4}" class="w"/>`);
      }
      const v = b.median >= 100 ? b.median.toFixed(0) : b.median >= 10 ? b.median.toFixed(1) : b.median.toFixed(2);
      out.push(`<text x="${labelW + Math.max(w, b.max !== undefined ? (b.max / top) * plotW : 0) + 6}" y="${y + barH - 5}" class="v">${v}</text>`);
      y += barH + gap;
    }
    y += 28;
  }
  const height = y - 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>.t{font-size:16px;font-weight:600;fill:#111}.st{font-size:11px;fill:#555}.h{font-size:13px;font-weight:600;fill:#111}.s{font-size:11px;fill:#666}.l{font-size:12px;fill:#222}.v{font-size:11px;fill:#222}.pw{fill:#1f77b4}.peer{fill:#b8c4cf}.w{stroke:#333;stroke-width:1.2;fill:none}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="16" y="24" class="t">${esc(title)}</text><text x="16" y="40" class="st">${esc(subtitle)}</text>
${out.join('\n')}
</svg>
`;
}
