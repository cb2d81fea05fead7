/*
 * Stamp rewards panel: balance, tier progress, ways to earn, rewards to redeem, the code a
 * redemption returns, the referral link, history and the shopper's data choices. Loaded by
 * stamp-loader.js only when the panel is first opened (or when an inline Rewards section is
 * on the page), so a storefront's first load carries none of it. One view serves both the
 * modal dialog and the inline section. Everything shown comes from the app proxy and is
 * written with textContent, never parsed as HTML; any failure shows a short notice instead.
 */
(function () {
  'use strict';

  var S = window.Stamp;
  if (!S || !S.cfg || S.mount) return;
  var doc = document;

  var STRINGS = {
    en: {
      title: 'Rewards',
      close: 'Close',
      hi: 'Hi, {name}',
      balance: 'Your balance',
      point: 'point',
      points: 'points',
      pending: '+{points} pending',
      tier: '{name} tier',
      multiplier: '{x}× points',
      toNext: '{points} to reach {name}',
      progressTo: 'Progress to {name}',
      topTier: 'You have reached the top tier.',
      earn: 'Ways to earn',
      rewards: 'Spend your points',
      redeem: 'Redeem',
      redeemFor: 'Redeem {name}',
      redeeming: 'Redeeming…',
      needMore: 'You need {points} more.',
      signInToRedeem: 'Sign in to redeem rewards.',
      yourCode: 'Your code',
      codeReady: 'Your code is ready: {code}',
      useCode: 'Enter it at checkout.',
      expires: 'Expires {date}.',
      copy: 'Copy',
      copyCode: 'Copy code',
      copyLink: 'Copy link',
      copied: 'Copied',
      copyFailed: 'Select the text and copy it.',
      refer: 'Refer a friend',
      referText: 'Share your link: your friend gets a reward and you earn points.',
      referLink: 'Your referral link',
      share: 'Share',
      shareText: 'A gift for you at {shop}',
      email: 'Email',
      history: 'Points history',
      more: 'More',
      noHistory: 'No activity yet.',
      account: 'Your data',
      download: 'Download my data',
      leave: 'Leave the program',
      leaveWarn: 'This erases your points, your history and your referral link. It cannot be undone.',
      leaveYes: 'Yes, erase and leave',
      cancel: 'Cancel',
      left: 'You have left the program.',
      join: 'Join our rewards program',
      joinText: 'Earn points every time you shop and turn them into discounts.',
      joinCta: 'Join now',
      signIn: 'Sign in',
      loading: 'Loading…',
      unavailable: 'Rewards are unavailable right now.',
      retry: 'Try again',
      insufficient_points: 'You do not have enough points for this reward.',
      discount_failed: 'We couldn’t create your code; your points were returned.',
      error: 'Something went wrong. Please try again.',
      kinds: {
        earn: 'Purchase', redeem: 'Reward', reverse: 'Refund', expire: 'Expired', adjust: 'Adjustment',
        import: 'Imported', referral: 'Referral', review: 'Review', signup: 'Welcome bonus',
        birthday: 'Birthday', custom: 'Bonus',
      },
    },
    fr: {
      title: 'Récompenses',
      close: 'Fermer',
      hi: 'Bonjour, {name}',
      balance: 'Votre solde',
      point: 'point',
      points: 'points',
      pending: '+{points} en attente',
      tier: 'Niveau {name}',
      multiplier: 'Points ×{x}',
      toNext: 'Plus que {points} pour atteindre {name}',
      progressTo: 'Progression vers {name}',
      topTier: 'Vous avez atteint le niveau le plus élevé.',
      earn: 'Comment gagner des points',
      rewards: 'Utilisez vos points',
      redeem: 'Échanger',
      redeemFor: 'Échanger {name}',
      redeeming: 'Échange en cours…',
      needMore: 'Il vous manque {points}.',
      signInToRedeem: 'Connectez-vous pour échanger vos points.',
      yourCode: 'Votre code',
      codeReady: 'Votre code est prêt : {code}',
      useCode: 'Saisissez-le lors du paiement.',
      expires: 'Expire le {date}.',
      copy: 'Copier',
      copyCode: 'Copier le code',
      copyLink: 'Copier le lien',
      copied: 'Copié',
      copyFailed: 'Sélectionnez le texte pour le copier.',
      refer: 'Parrainez un ami',
      referText: 'Partagez votre lien : votre ami reçoit une récompense et vous gagnez des points.',
      referLink: 'Votre lien de parrainage',
      share: 'Partager',
      shareText: 'Un cadeau pour vous chez {shop}',
      email: 'E-mail',
      history: 'Historique des points',
      more: 'Voir plus',
      noHistory: 'Aucune activité pour le moment.',
      account: 'Vos données',
      download: 'Télécharger mes données',
      leave: 'Quitter le programme',
      leaveWarn: 'Cela efface vos points, votre historique et votre lien de parrainage. C’est irréversible.',
      leaveYes: 'Oui, tout effacer et quitter',
      cancel: 'Annuler',
      left: 'Vous avez quitté le programme.',
      join: 'Rejoignez notre programme de fidélité',
      joinText: 'Gagnez des points à chaque achat et transformez-les en réductions.',
      joinCta: 'Je m’inscris',
      signIn: 'Se connecter',
      loading: 'Chargement…',
      unavailable: 'Les récompenses sont indisponibles pour le moment.',
      retry: 'Réessayer',
      insufficient_points: 'Vous n’avez pas assez de points pour cette récompense.',
      discount_failed: 'Nous n’avons pas pu créer votre code ; vos points vous ont été rendus.',
      error: 'Une erreur est survenue. Veuillez réessayer.',
      kinds: {
        earn: 'Achat', redeem: 'Récompense', reverse: 'Remboursement', expire: 'Expiration',
        adjust: 'Ajustement', import: 'Import', referral: 'Parrainage', review: 'Avis',
        signup: 'Bonus de bienvenue', birthday: 'Anniversaire', custom: 'Bonus',
      },
    },
    de: {
      title: 'Prämien',
      close: 'Schließen',
      hi: 'Hallo, {name}',
      balance: 'Ihr Punktestand',
      point: 'Punkt',
      points: 'Punkte',
      pending: '+{points} ausstehend',
      tier: 'Stufe {name}',
      multiplier: '{x}× Punkte',
      toNext: 'Noch {points} bis {name}',
      progressTo: 'Fortschritt bis {name}',
      topTier: 'Sie haben die höchste Stufe erreicht.',
      earn: 'So sammeln Sie Punkte',
      rewards: 'Punkte einlösen',
      redeem: 'Einlösen',
      redeemFor: '{name} einlösen',
      redeeming: 'Wird eingelöst…',
      needMore: 'Es fehlen {points}.',
      signInToRedeem: 'Melden Sie sich an, um Prämien einzulösen.',
      yourCode: 'Ihr Code',
      codeReady: 'Ihr Code ist bereit: {code}',
      useCode: 'Geben Sie ihn an der Kasse ein.',
      expires: 'Gültig bis {date}.',
      copy: 'Kopieren',
      copyCode: 'Code kopieren',
      copyLink: 'Link kopieren',
      copied: 'Kopiert',
      copyFailed: 'Markieren und kopieren Sie den Text.',
      refer: 'Freunde werben',
      referText: 'Teilen Sie Ihren Link: Ihre Freunde erhalten eine Prämie und Sie sammeln Punkte.',
      referLink: 'Ihr Empfehlungslink',
      share: 'Teilen',
      shareText: 'Ein Geschenk für Sie bei {shop}',
      email: 'E-Mail',
      history: 'Punkteverlauf',
      more: 'Mehr anzeigen',
      noHistory: 'Noch keine Aktivität.',
      account: 'Ihre Daten',
      download: 'Meine Daten herunterladen',
      leave: 'Programm verlassen',
      leaveWarn: 'Damit werden Ihre Punkte, Ihr Verlauf und Ihr Empfehlungslink gelöscht. Das lässt sich nicht rückgängig machen.',
      leaveYes: 'Ja, löschen und verlassen',
      cancel: 'Abbrechen',
      left: 'Sie haben das Programm verlassen.',
      join: 'Werden Sie Mitglied im Prämienprogramm',
      joinText: 'Sammeln Sie bei jedem Einkauf Punkte und lösen Sie sie gegen Rabatte ein.',
      joinCta: 'Jetzt beitreten',
      signIn: 'Anmelden',
      loading: 'Wird geladen…',
      unavailable: 'Prämien sind gerade nicht verfügbar.',
      retry: 'Erneut versuchen',
      insufficient_points: 'Sie haben nicht genug Punkte für diese Prämie.',
      discount_failed: 'Wir konnten Ihren Code nicht erstellen; Ihre Punkte wurden zurückgebucht.',
      error: 'Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.',
      kinds: {
        earn: 'Einkauf', redeem: 'Prämie', reverse: 'Erstattung', expire: 'Verfallen', adjust: 'Korrektur',
        import: 'Import', referral: 'Empfehlung', review: 'Bewertung', signup: 'Willkommensbonus',
        birthday: 'Geburtstag', custom: 'Bonus',
      },
    },
  };

  var locale = S.cfg.locale;
  var T = STRINGS[locale.toLowerCase().split(/[-_]/)[0]];
  var lang = T ? locale : 'en'; // the language the text is in, for screen readers
  T = T || STRINGS.en;
  var numbers = intl(function (tag) {
    return new Intl.NumberFormat(tag);
  });
  var signed = intl(function (tag) {
    return new Intl.NumberFormat(tag, { signDisplay: 'exceptZero' });
  });
  var dates = intl(function (tag) {
    return new Intl.DateTimeFormat(tag, { dateStyle: 'medium' });
  });
  var plurals = intl(function (tag) {
    return new Intl.PluralRules(tag);
  });
  var FOCUSABLE = 'a[href],button:not([disabled]),input:not([disabled]),summary,[tabindex]:not([tabindex="-1"])';
  var uid = 0;

  // ---- small helpers ------------------------------------------------------------------

  function intl(make) {
    try {
      return make(locale);
    } catch (e) {
      return make('en');
    }
  }

  function t(key, vars) {
    var text = T[key] != null ? T[key] : STRINGS.en[key];
    return String(text).replace(/\{(\w+)\}/g, function (match, name) {
      return vars && vars[name] != null ? String(vars[name]) : match;
    });
  }

  function num(value) {
    return Number(value) || 0;
  }

  function pts(n) {
    return numbers.format(n) + '\u00a0' + (plurals.select(n) === 'one' ? t('point') : t('points'));
  }

  function date(iso) {
    var d = new Date(iso);
    return isNaN(d) ? String(iso || '') : dates.format(d);
  }

  function nextId(prefix) {
    uid += 1;
    return 'stamp-' + prefix + '-' + uid;
  }

  // Only http(s) links from the API ever become an href.
  function safeUrl(value) {
    try {
      var parsed = new URL(String(value), location.href);
      return /^https?:$/.test(parsed.protocol) ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  // Build an element. Strings become text nodes; `text` sets textContent; `on*` adds a
  // listener whose errors are caught; other props are attributes. No HTML is ever parsed.
  function h(tag, props, kids) {
    var el = doc.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value == null || value === false) return;
      if (key === 'text') el.textContent = value;
      else if (key === 'class') el.className = value;
      else if (key.slice(0, 2) === 'on') el.addEventListener(key.slice(2), guard(value));
      else el.setAttribute(key, value === true ? '' : value);
    });
    (kids || []).forEach(function (kid) {
      if (kid != null && kid !== false) el.append(kid);
    });
    return el;
  }

  function guard(fn) {
    return function (event) {
      try {
        return fn.call(this, event);
      } catch (e) {
        if (window.console) console.warn('Stamp:', e);
      }
    };
  }

  function button(label, onclick, kind, extra) {
    var props = { type: 'button', class: 'stamp-btn' + (kind ? ' stamp-btn--' + kind : ''), text: label, onclick: onclick };
    return h('button', Object.assign(props, extra || {}));
  }

  function section(title, kids, extraClass) {
    var id = nextId('h');
    return h('section', { class: 'stamp-section' + (extraClass ? ' ' + extraClass : ''), 'aria-labelledby': id }, [
      h('h3', { class: 'stamp-section__title', id: id, text: title }),
    ].concat(kids));
  }

  // Text on the accent colour must contrast with it, however the accent was set (CSS too).
  function contrast(el) {
    var accent = getComputedStyle(el).getPropertyValue('--stamp-accent').trim();
    if (accent) S.theme(el, { accent: accent });
  }

  function visible(el) {
    return el.getClientRects().length > 0 && !el.closest('[hidden]');
  }

  function errorText(error) {
    var code = error && error.code;
    if (code && STRINGS.en[code] && typeof STRINGS.en[code] === 'string') return t(code);
    return (error && error.message) || t('error');
  }

  function copyText(text, holder) {
    var viaApi = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(text)
      : Promise.reject(new Error('no clipboard'));
    return viaApi.catch(function () {
      var area = h('textarea', { class: 'stamp-offscreen', readonly: true, 'aria-hidden': 'true' });
      var back = doc.activeElement;
      area.value = text;
      holder.append(area);
      area.select();
      var ok = false;
      try {
        ok = doc.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      area.remove();
      if (back && back.focus) back.focus();
      if (!ok) throw new Error('copy failed');
    });
  }

  // ---- the view -----------------------------------------------------------------------

  function createView(options) {
    var inline = !!options.inline;
    var titleId = nextId('title');
    var busy = false;
    var data = null;
    var closeButton = inline ? null : button('', options.onClose, 'icon', { 'aria-label': t('close') });
    if (closeButton) {
      closeButton.append(h('span', { 'aria-hidden': 'true', text: '×' }));
    }
    var title = h('h2', { class: 'stamp-title', id: titleId, text: options.heading || t('title') });
    var hero = h('div', { class: 'stamp-hero' });
    var head = h('div', { class: 'stamp-head' }, [h('div', { class: 'stamp-head__row' }, [title, closeButton]), hero]);
    var body = h('div', { class: 'stamp-body' });
    var status = h('p', { class: 'stamp-status', role: 'status', 'aria-live': 'polite' });
    var root = h(inline ? 'section' : 'div', {
      class: 'stamp-ui stamp-panel' + (inline ? ' stamp-panel--inline' : ''),
      role: inline ? null : 'dialog',
      'aria-modal': inline ? null : 'true',
      'aria-labelledby': titleId,
      tabindex: '-1',
      lang: lang,
    }, [head, body, status]);
    var statusTimer;

    function say(text, isError) {
      clearTimeout(statusTimer);
      status.classList.toggle('stamp-status--error', !!isError);
      // Clear first so the same message twice is announced twice.
      status.textContent = '';
      setTimeout(function () {
        status.textContent = text;
      }, 30);
      if (!isError) {
        statusTimer = setTimeout(function () {
          status.textContent = '';
        }, 6000);
      }
    }

    function keepFocus() {
      if (!inline && !root.hidden && !root.contains(doc.activeElement)) (closeButton || root).focus();
    }

    function clear() {
      hero.textContent = '';
      body.textContent = '';
    }

    function load(promise) {
      clear();
      root.setAttribute('aria-busy', 'true');
      body.append(h('p', { class: 'stamp-muted stamp-loading', text: t('loading') }));
      Promise.resolve(promise)
        .then(render)
        .catch(unavailable)
        .then(function () {
          root.removeAttribute('aria-busy');
          keepFocus();
        });
    }

    function unavailable() {
      clear();
      body.append(
        h('div', { class: 'stamp-unavailable' }, [
          h('p', { text: t('unavailable') }),
          button(t('retry'), function () {
            load(S.state(true));
          }, 'secondary'),
        ])
      );
    }

    function render(state) {
      data = state || {};
      data.rewards = Array.isArray(data.rewards) ? data.rewards : [];
      data.ways_to_earn = Array.isArray(data.ways_to_earn) ? data.ways_to_earn : [];
      data.urls = data.urls || {};
      data.shop = data.shop || {};
      var member = data.member;
      clear();
      if (member) {
        hero.append(balanceBlock(member));
        S.badges(num(member.points_balance));
      } else {
        hero.append(joinBlock());
      }
      [
        member ? tierBlock(member) : null,
        rewardsBlock(),
        data.ways_to_earn.length ? earnBlock() : null,
        member ? referralBlock(member) : null,
        member ? historyBlock() : null,
        // Export and leave exist on the app proxy only (WooCommerce has no such routes yet).
        member && !S.cfg.token ? accountBlock() : null,
      ].forEach(function (block) {
        if (block) body.append(block);
      });
    }

    // -- header: balance or an invitation to join
    function balanceBlock(member) {
      var balance = num(member.points_balance);
      var pending = num(member.pending_points);
      return h('div', { class: 'stamp-balance' }, [
        h('p', { class: 'stamp-hello', text: member.first_name ? t('hi', { name: member.first_name }) : t('balance') }),
        h('p', { class: 'stamp-balance__row' }, [
          h('span', { class: 'stamp-balance__value', 'data-stamp-balance': '', text: numbers.format(balance) }),
          h('span', { class: 'stamp-balance__unit', text: plurals.select(balance) === 'one' ? t('point') : t('points') }),
        ]),
        pending > 0 ? h('p', { class: 'stamp-pending', text: t('pending', { points: pts(pending) }) }) : null,
      ]);
    }

    function joinBlock() {
      var register = safeUrl(data.urls.register);
      var login = safeUrl(data.urls.login);
      return h('div', { class: 'stamp-join' }, [
        h('p', { class: 'stamp-join__title', text: t('join') }),
        h('p', { class: 'stamp-join__text', text: t('joinText') }),
        h('p', { class: 'stamp-actions' }, [
          register ? h('a', { class: 'stamp-btn stamp-btn--invert', href: register, text: t('joinCta') }) : null,
          login ? h('a', { class: 'stamp-btn stamp-btn--ghost', href: login, text: t('signIn') }) : null,
        ]),
      ]);
    }

    // -- tier and progress to the next one
    function tierBlock(member) {
      var tier = member.tier;
      if (!tier || !tier.name) return null;
      var factor = parseFloat(tier.multiplier);
      var kids = [
        h('p', { class: 'stamp-tier__name' }, [
          h('strong', { text: t('tier', { name: tier.name }) }),
          isFinite(factor) ? ' · ' + t('multiplier', { x: numbers.format(factor) }) : null,
        ]),
      ];
      var next = tier.next;
      if (next && next.name) {
        var needed = Math.max(0, num(next.points_needed));
        // The contract gives only what is missing; `threshold`, when sent, is the exact span.
        var max = num(next.threshold) > 0 ? num(next.threshold) : Math.max(0, num(member.lifetime_points)) + needed;
        var now = Math.max(0, max - needed);
        var fill = h('span', { class: 'stamp-progress__fill' });
        fill.style.width = (max ? Math.min(100, (100 * now) / max) : 0).toFixed(1) + '%';
        var label = t('toNext', { points: pts(needed), name: next.name });
        kids.push(
          h('div', {
            class: 'stamp-progress',
            role: 'progressbar',
            'aria-label': t('progressTo', { name: next.name }),
            'aria-valuemin': '0',
            'aria-valuemax': String(max),
            'aria-valuenow': String(now),
            'aria-valuetext': label,
          }, [fill]),
          h('p', { class: 'stamp-muted', text: label })
        );
      } else {
        kids.push(h('p', { class: 'stamp-muted', text: t('topTier') }));
      }
      return h('div', { class: 'stamp-card stamp-tier' }, kids);
    }

    // -- rewards, with the code a redemption returns above them
    var codeSlot;
    var rewardList;
    var lastCode = null; // stays shown when the panel is re-rendered or reopened

    function rewardsBlock() {
      if (!data.rewards.length) return null;
      codeSlot = h('div', { class: 'stamp-code-slot' });
      rewardList = h('ul', { class: 'stamp-list stamp-rewards' });
      fillRewards();
      if (lastCode) showCode(lastCode.result, lastCode.reward, true);
      return section(t('rewards'), [
        codeSlot,
        data.member ? null : h('p', { class: 'stamp-muted', text: t('signInToRedeem') }),
        rewardList,
      ]);
    }

    function fillRewards() {
      rewardList.textContent = '';
      data.rewards.forEach(function (reward) {
        rewardList.append(rewardItem(reward));
      });
    }

    function rewardItem(reward) {
      var cost = num(reward.points_cost);
      var name = String(reward.name || '');
      var kids = [
        h('div', { class: 'stamp-reward__text' }, [
          h('span', { class: 'stamp-reward__name', text: name }),
          h('span', { class: 'stamp-reward__cost', text: pts(cost) }),
        ]),
      ];
      if (data.member) {
        var reasonId = nextId('why');
        var reason = reward.locked_reason ||
          (reward.affordable ? null : t('needMore', { points: pts(Math.max(0, cost - num(data.member.points_balance))) }));
        var redeemButton = button(t('redeem'), function () {
          redeem(reward, redeemButton);
        }, 'primary', {
          'aria-label': t('redeemFor', { name: name }),
          'aria-describedby': reason ? reasonId : null,
          disabled: !reward.affordable || !!reward.locked_reason,
        });
        kids.push(redeemButton);
        if (reason) kids.push(h('p', { class: 'stamp-reward__why', id: reasonId, text: String(reason) }));
      }
      return h('li', { class: 'stamp-reward' + (reward.affordable ? '' : ' stamp-reward--locked') }, kids);
    }

    function redeem(reward, redeemButton) {
      if (busy) return;
      busy = true;
      // One id per click; kept for a retry after a network error so a lost answer is not a
      // second redemption.
      var requestId = (reward.pendingRequest = reward.pendingRequest || S.randomId());
      redeemButton.setAttribute('aria-disabled', 'true');
      redeemButton.textContent = t('redeeming');
      S.api('/api/redeem', { reward_id: String(reward.id), request_id: requestId })
        .then(function (result) {
          reward.pendingRequest = null;
          S.forgetState();
          var balance = num(result.points_balance);
          data.member.points_balance = balance;
          data.rewards.forEach(function (r) {
            r.affordable = !!r.affordable && num(r.points_cost) <= balance;
          });
          hero.textContent = '';
          hero.append(balanceBlock(data.member));
          S.badges(balance);
          fillRewards();
          showCode(result, reward);
        }, function (error) {
          if (error && error.status) reward.pendingRequest = null;
          redeemButton.removeAttribute('aria-disabled');
          redeemButton.textContent = t('redeem');
          say(errorText(error), true);
        })
        .catch(function () {
          say(t('error'), true);
        })
        .then(function () {
          busy = false;
        });
    }

    function showCode(result, reward, quiet) {
      lastCode = { result: result, reward: reward };
      var code = String(result.code || '');
      var copy = button(t('copyCode'), function () {
        copyText(code, root).then(function () {
          say(t('copied'));
        }, function () {
          say(t('copyFailed'), true);
        });
      }, 'secondary');
      codeSlot.textContent = '';
      codeSlot.append(
        h('div', { class: 'stamp-code' }, [
          h('p', { class: 'stamp-code__label', text: t('yourCode') + ' · ' + String(reward.name || '') }),
          h('p', { class: 'stamp-code__row' }, [h('code', { class: 'stamp-code__value', text: code }), copy]),
          h('p', {
            class: 'stamp-muted',
            text: t('useCode') + (result.expires_at ? ' ' + t('expires', { date: date(result.expires_at) }) : ''),
          }),
        ])
      );
      if (quiet) return;
      say(t('codeReady', { code: code }));
      copy.focus();
    }

    // -- ways to earn
    function earnBlock() {
      return section(t('earn'), [
        h('ul', { class: 'stamp-list stamp-earn' }, data.ways_to_earn.map(function (way) {
          return h('li', { class: 'stamp-earn__item' }, [
            h('span', { class: 'stamp-earn__title', text: String(way.title || '') }),
            way.description ? h('span', { class: 'stamp-muted', text: String(way.description) }) : null,
          ]);
        })),
      ]);
    }

    // -- referral link: copy, native share, or plain links opened only on click
    function referralBlock(member) {
      var link = safeUrl(member.referral_url);
      if (!link) return null;
      var inputId = nextId('ref');
      var input = h('input', { class: 'stamp-input', id: inputId, type: 'text', readonly: true, value: link });
      var message = t('shareText', { shop: data.shop.name || location.hostname });
      var enc = encodeURIComponent;
      var actions = [
        button(t('copyLink'), function () {
          copyText(link, root).then(function () {
            say(t('copied'));
          }, function () {
            input.select();
            say(t('copyFailed'), true);
          });
        }, 'secondary'),
      ];
      if (navigator.share) {
        actions.push(button(t('share'), function () {
          navigator.share({ title: message, text: message, url: link }).catch(function () {});
        }, 'secondary'));
      }
      var links = navigator.share ? null : h('p', { class: 'stamp-share' }, [
        ['mailto:?subject=' + enc(message) + '&body=' + enc(message + ' ' + link), t('email')],
        ['https://wa.me/?text=' + enc(message + ' ' + link), 'WhatsApp'],
        ['https://x.com/intent/post?text=' + enc(message) + '&url=' + enc(link), 'X'],
        ['https://www.facebook.com/sharer/sharer.php?u=' + enc(link), 'Facebook'],
      ].map(function (pair) {
        var external = pair[0].indexOf('mailto:') !== 0;
        return h('a', {
          class: 'stamp-share__link',
          href: pair[0],
          target: external ? '_blank' : null,
          rel: external ? 'noopener noreferrer' : null,
          text: pair[1],
        });
      }));
      return section(t('refer'), [
        h('p', { class: 'stamp-muted', text: t('referText') }),
        h('label', { class: 'stamp-label', for: inputId, text: t('referLink') }),
        h('p', { class: 'stamp-code__row' }, [input].concat(actions)),
        links,
      ]);
    }

    // -- history, fetched when first expanded, paged with "More"
    function historyBlock() {
      var list = h('ul', { class: 'stamp-list stamp-history__list', tabindex: '-1' });
      var cursor = null;
      var started = false;
      var more = button(t('more'), function () {
        page(cursor);
      }, 'secondary', { hidden: true });
      var details = h('details', { class: 'stamp-section stamp-history' }, [
        h('summary', { class: 'stamp-section__title', text: t('history') }),
        list,
        more,
      ]);
      details.addEventListener('toggle', guard(function () {
        if (details.open && !started) {
          started = true;
          page(null);
        }
      }));

      function page(from) {
        if (more.getAttribute('aria-disabled')) return;
        more.setAttribute('aria-disabled', 'true');
        list.setAttribute('aria-busy', 'true');
        S.api('/api/history' + (from ? '?cursor=' + encodeURIComponent(from) : ''))
          .then(function (result) {
            var rows = Array.isArray(result.data) ? result.data : [];
            rows.forEach(function (row) {
              list.append(historyRow(row));
            });
            if (!list.children.length) list.append(h('li', { class: 'stamp-muted', text: t('noHistory') }));
            cursor = result.next_cursor || null;
            var hadFocus = doc.activeElement === more;
            more.hidden = !cursor;
            if (hadFocus && !cursor) list.focus();
          }, function () {
            if (!from) started = false;
            say(t('unavailable'), true);
          })
          .then(function () {
            more.removeAttribute('aria-disabled');
            list.removeAttribute('aria-busy');
          });
      }
      return details;
    }

    function historyRow(row) {
      var points = num(row.points);
      var kinds = T.kinds || STRINGS.en.kinds;
      var what = row.reason || kinds[row.kind] || row.kind || '';
      return h('li', { class: 'stamp-history__row' }, [
        h('span', { class: 'stamp-history__what' }, [
          h('span', { text: String(what) }),
          h('span', { class: 'stamp-muted', text: date(row.created_at) + (row.code ? ' · ' + row.code : '') }),
        ]),
        h('span', {
          class: 'stamp-history__points ' + (points < 0 ? 'stamp-minus' : 'stamp-plus'),
          text: signed.format(points),
        }),
      ]);
    }

    // -- the shopper's data: export, and leaving after a confirmation
    function accountBlock() {
      var area = h('div', { class: 'stamp-account' });
      function actions() {
        area.textContent = '';
        area.append(
          h('a', { class: 'stamp-link', href: S.url('/api/export'), download: 'stamp-data.json', text: t('download') }),
          button(t('leave'), confirmLeave, 'quiet')
        );
      }
      function confirmLeave() {
        var cancel = button(t('cancel'), function () {
          actions();
          area.querySelector('.stamp-btn').focus();
        }, 'secondary');
        var yes = button(t('leaveYes'), function () {
          if (busy) return;
          busy = true;
          yes.setAttribute('aria-disabled', 'true');
          S.api('/api/leave', { confirm: true })
            .then(function () {
              lastCode = null;
              doc.querySelectorAll('[data-stamp-badge]').forEach(function (el) {
                el.hidden = true;
              });
              load(S.state(true));
              say(t('left'));
            }, function (error) {
              yes.removeAttribute('aria-disabled');
              say(errorText(error), true);
            })
            .then(function () {
              busy = false;
            });
        }, 'danger');
        area.textContent = '';
        area.append(h('div', { class: 'stamp-confirm' }, [
          h('p', { text: t('leaveWarn') }),
          h('p', { class: 'stamp-actions' }, [yes, cancel]),
        ]));
        cancel.focus();
      }
      actions();
      return section(t('account'), [area], 'stamp-section--account');
    }

    return { root: root, load: load, closeButton: closeButton };
  }

  // ---- dialog -------------------------------------------------------------------------

  var dialog = null;
  var overlay = null;
  var opener = null;

  function onKey(event) {
    if (!dialog || dialog.root.hidden) return;
    if (event.key === 'Escape') {
      event.preventDefault();
      closeDialog();
    } else if (event.key === 'Tab') {
      // Keep focus inside the dialog.
      var items = Array.prototype.filter.call(dialog.root.querySelectorAll(FOCUSABLE), visible);
      if (!items.length) return;
      var first = items[0];
      var last = items[items.length - 1];
      var active = doc.activeElement;
      var inside = dialog.root.contains(active) && active !== dialog.root;
      if (event.shiftKey && (!inside || active === first)) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (!inside || active === last)) {
        event.preventDefault();
        first.focus();
      }
    }
  }

  function onFocusIn(event) {
    if (dialog && !dialog.root.hidden && !dialog.root.contains(event.target)) dialog.closeButton.focus();
  }

  function closeDialog() {
    if (!dialog || dialog.root.hidden) return;
    dialog.root.hidden = true;
    overlay.hidden = true;
    doc.removeEventListener('keydown', onKey, true);
    doc.removeEventListener('focusin', onFocusIn, true);
    if (S.launcher) S.launcher.setAttribute('aria-expanded', 'false');
    var back = opener && opener.isConnected ? opener : S.launcher;
    if (back && back.focus) back.focus();
  }

  S.openDialog = function (button, statePromise) {
    if (!dialog) {
      dialog = createView({ inline: false, onClose: closeDialog });
      overlay = h('div', { class: 'stamp-ui stamp-overlay', hidden: true, onclick: closeDialog });
      dialog.root.hidden = true;
      S.theme(dialog.root, S.cfg.theme);
      if (S.launcher && S.launcher.dataset.stampPosition === 'left') dialog.root.dataset.stampPosition = 'left';
      doc.body.append(overlay, dialog.root);
      contrast(dialog.root);
    }
    opener = button || S.launcher;
    var wasOpen = !dialog.root.hidden;
    overlay.hidden = false;
    dialog.root.hidden = false;
    if (S.launcher) S.launcher.setAttribute('aria-expanded', 'true');
    if (!wasOpen) {
      doc.addEventListener('keydown', onKey, true);
      doc.addEventListener('focusin', onFocusIn, true);
    }
    dialog.load(statePromise);
    dialog.closeButton.focus();
  };

  S.closeDialog = closeDialog;

  // Mount the same view inline (the Rewards section block) instead of as a dialog.
  S.mount = function (host, options) {
    var view = createView({ inline: true, heading: host.dataset.heading });
    host.textContent = '';
    host.append(view.root);
    contrast(view.root);
    view.load(options && options.state);
    return view;
  };
})();
