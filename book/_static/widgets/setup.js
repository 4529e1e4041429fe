// Loaded after require.js and before embed-amd.js, only on pages that hold widgets (see
// nb_ipywidgets_js in _config.yml). Two fixes for the widgets of the static book:
(function () {
  "use strict";

  // 1. Fonts from the site itself. The widget bundle's webpack public path (where it fetches its
  //    icon fonts) is derived from the RequireJS URL of its modules; mapping them into this folder
  //    makes the fonts load from here, never from a CDN.
  var src = document.currentScript.src;
  var here = src.slice(0, src.lastIndexOf("/") + 1);
  window.requirejs.config({
    paths: {
      "@jupyter-widgets/html-manager/dist": here + "fonts",
      "@jupyter-widgets/html-manager": here + "fonts/html-manager",
    },
  });

  // 2. MathJax 3. Widget labels are typeset with the MathJax 2 API (MathJax.Hub.Queue) whenever
  //    window.MathJax exists; Sphinx loads MathJax 3 (on pages with math), which has no Hub, so
  //    each label threw "Cannot read properties of undefined (reading 'Queue')". Give every value
  //    window.MathJax takes (the config object, then MathJax itself) a hidden Hub that typesets
  //    with the MathJax 3 API.
  var hub = {
    Queue: function (job) {
      var mj = window.MathJax, el = job && job[2];
      if (!el || !mj) return;
      var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
      ready.then(function () {
        if (window.MathJax.typesetPromise) return window.MathJax.typesetPromise([el]);
      }).catch(function (err) { console.warn("MathJax could not typeset a widget label", err); });
    },
  };
  function addHub(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      Object.defineProperty(mj, "Hub", { value: hub, enumerable: false, configurable: true });
    }
  }
  var current = window.MathJax;
  addHub(current);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () { return current; },
    set: function (value) { current = value; addHub(value); },
  });
})();
