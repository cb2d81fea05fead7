/*
 * Stamp loader: the only Stamp file every storefront page loads (with defer). It draws the
 * launcher, reads its config from its own tag's data attributes and fetches nothing until the
 * panel is opened; then it loads stamp.css + stamp-panel.js (split out so unopened pages never
 * pay for them) and GETs the shopper's state. Empty points badges and inline Rewards sections
 * are filled when the browser is idle. Every failure is caught: never break the page.
 * On WooCommerce the plugin sets window.StampConfig = {apiBase, customerToken} (or the tag has
 * data-api / data-token): calls then go to that base with `Authorization: Bearer <token>`.
 */
(function () {
  'use strict';

  var doc = document;
  var win = window;
  var script = doc.currentScript;
  var data = (script && script.dataset) || {};
  var S = (win.Stamp = win.Stamp || {});

  // A second tag (the Rewards section block next to the app embed) only adds what it asks for.
  if (S.cfg) {
    if (data.launcher !== 'off') S.addLauncher(data);
    return;
  }

  // [launcher label, unavailable notice, one point, other points]; the panel has the rest.
  var STRINGS = {
    en: ['Rewards', 'Rewards are unavailable right now.', '# point', '# points'],
    fr: ['Récompenses', 'Les récompenses sont indisponibles pour le moment.', '# point', '# points'],
    de: ['Prämien', 'Prämien sind gerade nicht verfügbar.', '# Punkt', '# Punkte'],
  };
  var THEME = ['accent', 'text', 'bg', 'radius', 'font'];
  // A gift box, drawn with strokes.
  var ICON = 'M3 8h18v4H3zM5 12v9h14v-9M12 8v13M12 8H8.5a2.5 2.5 0 1 1 0-5C11 3 12 8 12 8zM12 8h3.5a2.5 2.5 0 1 0 0-5C13 3 12 8 12 8z';
  var LAUNCHER_CSS =
    '.stamp-launcher{position:fixed;z-index:2147483000;bottom:var(--stamp-offset-y,20px);' +
    'right:var(--stamp-offset-x,20px);display:inline-flex;align-items:center;gap:8px;' +
    'box-sizing:border-box;height:48px;margin:0;padding:0 18px 0 14px;border:0;border-radius:999px;' +
    'background:var(--stamp-accent,#4f46e5);color:var(--stamp-on-accent,#fff);' +
    'font-family:var(--stamp-font);font-size:15px;font-weight:600;line-height:1;letter-spacing:0;' +
    'text-transform:none;box-shadow:0 6px 20px rgba(15,15,30,.22);cursor:pointer}' +
    '.stamp-launcher[data-stamp-position=left]{right:auto;left:var(--stamp-offset-x,20px)}' +
    '.stamp-launcher:focus-visible{outline:3px solid var(--stamp-accent,#4f46e5);outline-offset:3px}' +
    '.stamp-launcher svg{width:22px;height:22px;fill:none;stroke:currentColor;stroke-width:2;' +
    'stroke-linecap:round;stroke-linejoin:round;flex:none}' +
    '.stamp-launcher[aria-busy=true]{cursor:progress;opacity:.85}' +
    '.stamp-launcher .stamp-badge{padding:4px 8px;border-radius:999px;background:rgba(255,255,255,.22);' +
    'font-size:13px}' +
    '.stamp-notice{position:fixed;z-index:2147483001;bottom:calc(var(--stamp-offset-y,20px) + 60px);' +
    'right:var(--stamp-offset-x,20px);max-width:280px;margin:0;padding:12px 14px;border-radius:10px;' +
    'background:#1f1d2b;color:#fff;font:14px/1.4 system-ui,sans-serif}' +
    '.stamp-notice:empty{display:none}' +
    '@media print{.stamp-launcher,.stamp-notice{display:none}}';

  var given = win.StampConfig || {};
  var token = data.token || given.customerToken || given.token || '';
  var cfg = (S.cfg = {
    api: base(data.api || given.apiBase || given.api),
    token: token,
    locale: data.locale || doc.documentElement.lang || 'en',
    customer: data.customer || (token ? 'token' : ''),
    shop: data.shop || '',
    src: (script && script.src) || '',
    theme: {},
  });
  THEME.forEach(function (key) {
    if (data[key]) cfg.theme[key] = data[key];
  });
  var words = STRINGS[cfg.locale.toLowerCase().split(/[-_]/)[0]] || STRINGS.en;
  var memoryDevice;
  var knownPoints = null;
  var loading;
  var stateCache;
  var notice;

  function base(api) {
    api = (api || '/apps/stamp').trim().replace(/\/+$/, '');
    return /^(https?:)?\//.test(api) ? api : '/' + api;
  }

  function randomId() {
    var bytes = new Uint8Array(16);
    (win.crypto || win.msCrypto).getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return (b < 16 ? '0' : '') + b.toString(16);
      })
      .join('');
  }

  // The app proxy strips cookies, so a random id in localStorage is the same-device signal.
  function device() {
    try {
      var id = localStorage.getItem('stamp_device');
      if (!id) localStorage.setItem('stamp_device', (id = randomId()));
      return id;
    } catch (e) {
      return memoryDevice || (memoryDevice = randomId());
    }
  }

  // A base that already ends in /api (WooCommerce: {app}/woo/api) takes the bare path.
  function url(path) {
    if (/\/api$/.test(cfg.api)) path = path.replace(/^\/api(?=\/)/, '');
    return (
      cfg.api + path + (path.indexOf('?') < 0 ? '?' : '&') +
      'locale=' + encodeURIComponent(cfg.locale) + '&device=' + encodeURIComponent(device())
    );
  }

  // JSON over the app proxy (or, with a token, straight to Stamp); rejects with
  // {status, code, message} on any failure.
  function api(path, body) {
    var init = { method: body ? 'POST' : 'GET', credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (cfg.token) init.headers.Authorization = 'Bearer ' + cfg.token;
    if (body) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (win.AbortSignal && AbortSignal.timeout) init.signal = AbortSignal.timeout(15000);
    return fetch(url(path), init).then(function (response) {
      return response.json().then(
        function (json) {
          if (response.ok && json) return json;
          var error = (json && json.error) || {};
          throw { status: response.status, code: error.code, message: error.message };
        },
        function () {
          throw { status: response.status };
        }
      );
    });
  }

  // GET /api/state, shared by the badges and the panel for a few seconds.
  function state(fresh) {
    if (fresh || !stateCache || Date.now() - stateCache.at > 30000) {
      var entry = (stateCache = { at: Date.now(), promise: api('/api/state') });
      entry.promise.catch(function () {
        if (stateCache === entry) stateCache = null;
      });
    }
    return stateCache.promise;
  }

  function numberFormat() {
    try {
      return new Intl.NumberFormat(cfg.locale);
    } catch (e) {
      return new Intl.NumberFormat('en');
    }
  }

  function pointsText(n) {
    var one = false;
    try {
      one = new Intl.PluralRules(cfg.locale).select(n) === 'one';
    } catch (e) {
      one = n === 1;
    }
    return words[one ? 2 : 3].replace('#', numberFormat().format(n));
  }

  // Fill every points badge; the panel calls this again after a redemption.
  function badges(points) {
    if (typeof points !== 'number' || isNaN(points)) return;
    knownPoints = points;
    doc.querySelectorAll('[data-stamp-badge]').forEach(function (el) {
      el.textContent = el.dataset.stampBadge === 'number' ? numberFormat().format(points) : pointsText(points);
      el.dataset.points = String(points);
      el.hidden = false;
    });
  }

  function idle(fn) {
    var run = function () {
      try {
        fn();
      } catch (e) {
        /* never break the page */
      }
    };
    if (win.requestIdleCallback) win.requestIdleCallback(run, { timeout: 3000 });
    else setTimeout(run, 1500);
  }

  function asset(name) {
    return cfg.src.replace(/stamp-loader\.js/, name);
  }

  function addTag(tag, attrs) {
    return new Promise(function (resolve, reject) {
      var el = doc.createElement(tag);
      Object.keys(attrs).forEach(function (key) {
        el[key] = attrs[key];
      });
      el.onload = resolve;
      el.onerror = reject;
      doc.head.appendChild(el);
    });
  }

  // Stylesheet and panel script, once; a failure lets the next click try again.
  function load() {
    if (!loading) {
      loading = Promise.all([
        addTag('link', { rel: 'stylesheet', href: asset('stamp.css') }),
        S.mount ? null : addTag('script', { src: asset('stamp-panel.js'), async: true }),
      ]).then(function () {
        if (!S.mount) throw new Error('stamp-panel.js did not load');
      });
      loading.catch(function () {
        loading = null;
      });
    }
    return loading;
  }

  function say(text) {
    if (!notice) {
      notice = doc.createElement('p');
      notice.className = 'stamp-notice';
      notice.setAttribute('role', 'status');
      doc.body.appendChild(notice);
    }
    notice.textContent = text;
    clearTimeout(say.timer);
    say.timer = setTimeout(function () {
      notice.textContent = '';
    }, 6000);
  }

  // Open the panel as a dialog; focus goes back to `opener` when it closes.
  function open(opener) {
    var button = opener || S.launcher;
    var pending = state();
    if (button) button.setAttribute('aria-busy', 'true');
    return load()
      .then(function () {
        S.openDialog(button, pending);
      })
      .catch(function () {
        say(words[1]);
      })
      .then(function () {
        if (button) button.removeAttribute('aria-busy');
      });
  }

  function theme(el, values) {
    Object.keys(values).forEach(function (key) {
      el.style.setProperty('--stamp-' + key, values[key]);
    });
    var rgb = /^#([0-9a-f]{6})$/i.exec(values.accent || '');
    if (rgb) {
      // Black or white text on the accent, whichever contrasts more (WCAG relative luminance).
      var lum = [0, 2, 4].reduce(function (sum, i, k) {
        var c = parseInt(rgb[1].substr(i, 2), 16) / 255;
        c = c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
        return sum + c * [0.2126, 0.7152, 0.0722][k];
      }, 0);
      el.style.setProperty('--stamp-on-accent', lum > 0.179 ? '#111' : '#fff');
    }
  }

  function addLauncher(d) {
    if (S.launcher || !doc.body) return;
    var values = {};
    THEME.forEach(function (key) {
      if (d[key]) values[key] = d[key];
    });
    var button = doc.createElement('button');
    button.type = 'button';
    button.className = 'stamp-ui stamp-launcher';
    button.dataset.stampPosition = d.position === 'left' ? 'left' : 'right';
    button.setAttribute('aria-haspopup', 'dialog');
    button.setAttribute('aria-expanded', 'false');
    var svgNs = 'http://www.w3.org/2000/svg';
    var svg = doc.createElementNS(svgNs, 'svg');
    var path = doc.createElementNS(svgNs, 'path');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    path.setAttribute('d', ICON);
    svg.appendChild(path);
    var label = doc.createElement('span');
    label.textContent = words[0];
    button.append(svg, label);
    if (d.badge === 'on' && cfg.customer) {
      var badge = doc.createElement('span');
      badge.className = 'stamp-badge';
      badge.dataset.stampBadge = 'number';
      badge.hidden = true;
      button.appendChild(badge);
    }
    theme(button, values);
    button.addEventListener('click', function () {
      open(button);
    });
    S.launcher = button;
    doc.body.appendChild(button);
    badges(knownPoints);
  }

  function start() {
    var style = doc.createElement('style');
    style.textContent = LAUNCHER_CSS;
    doc.head.appendChild(style);
    // A balance Liquid already rendered (from the app-owned metafield) needs no request.
    var seeded = doc.querySelector('[data-stamp-badge][data-points]');
    var known = data.points || (seeded && seeded.dataset.points) || '';
    if (/^-?\d+$/.test(known)) knownPoints = parseInt(known, 10);
    if (data.launcher !== 'off') addLauncher(data);
    badges(knownPoints);

    // Theme links can open the panel too: a menu link to #stamp, or any [data-stamp-open].
    doc.addEventListener('click', function (event) {
      var opener = event.target.closest && event.target.closest('[data-stamp-open],a[href$="#stamp"]');
      if (opener) {
        event.preventDefault();
        open(opener);
      }
    });
    if (location.hash === '#stamp') open();

    var inline = doc.querySelectorAll('[data-stamp-inline]');
    var emptyBadge = doc.querySelector('[data-stamp-badge]:not([data-points])');
    if (inline.length) {
      idle(function () {
        var pending = state();
        load()
          .then(function () {
            inline.forEach(function (host) {
              S.mount(host, { inline: true, state: pending });
            });
          })
          .catch(function () {
            inline.forEach(function (host) {
              host.textContent = words[1];
            });
          });
      });
    } else if (emptyBadge && cfg.customer) {
      idle(function () {
        state().then(function (s) {
          if (s.member) badges(s.member.points_balance);
        }, function () {});
      });
    }
  }

  Object.assign(S, {
    api: api,
    url: url,
    state: state,
    forgetState: function () {
      stateCache = null;
    },
    badges: badges,
    theme: theme,
    open: open,
    randomId: randomId,
    addLauncher: function (d) {
      try {
        addLauncher(d);
      } catch (e) {
        /* never break the page */
      }
    },
  });

  try {
    start();
  } catch (e) {
    /* never break the page */
  }
})();
