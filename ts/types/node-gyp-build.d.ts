declare module 'node-gyp-build' {
  /** Loads the addon of the package rooted at `dir` (build/ or prebuilds/). */
  function nodeGypBuild(dir: string): unknown;
  export default nodeGypBuild;
}
