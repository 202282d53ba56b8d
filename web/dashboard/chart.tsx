import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface ChartSeries {
  label: string;
  color: string;
  values: number[];
}

/** A uPlot line chart over time (seconds), redrawn in place when the data changes. */
export function TimeChart(props: { title: string; t: number[]; series: ChartSeries[]; unit: string }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = [props.t.map((t) => t / 1000), ...props.series.map((s) => s.values)] as uPlot.AlignedData;

  useEffect(() => {
    const el = host.current!;
    plot.current = new uPlot(
      {
        width: Math.max(280, el.clientWidth),
        height: 180,
        legend: { show: true },
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [{}, { size: 50, values: (_u, ticks) => ticks.map((v) => `${+v.toFixed(2)}${props.unit}`) }],
        series: [
          {},
          ...props.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            value: (_u: uPlot, v: number | null) => (v === null ? '–' : (+v.toFixed(2)).toString()),
          })),
        ],
      },
      data,
      el,
    );
    const resize = () => plot.current?.setSize({ width: Math.max(280, el.clientWidth), height: 180 });
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return (
    <div class="chart">
      <h3>{props.title}</h3>
      <div ref={host} />
    </div>
  );
}
