/** snappyjs ships no types; the two functions this SDK uses. */
declare module 'snappyjs' {
  export function uncompress(input: Uint8Array, maxLength?: number): Uint8Array;
  export function compress(input: Uint8Array): Uint8Array;
  const snappyjs: { uncompress: typeof uncompress; compress: typeof compress };
  export default snappyjs;
}
